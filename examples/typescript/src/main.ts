// A TypeScript client of the autocurriculum teacher service, typed from the server's own
// /openapi.json (`npm run generate` writes src/schema.d.ts; nothing here is written by hand
// about the API's shapes).
//
//   AUTOCURRICULUM_SERVER=http://127.0.0.1:8000 AUTOCURRICULUM_TOKEN=... npm start -- [name]
//
// Progress goes to stdout line by line; the LAST stdout line is one JSON object summing up the
// run. Any unexpected HTTP status ends the process with exit code 1.
import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

type Task = components["schemas"]["Task"];
type Report = components["schemas"]["Report"];

const ROUNDS = 3;
const BATCH = 8;
const WORKER = "ts-example";

const server = (process.env["AUTOCURRICULUM_SERVER"] || "http://127.0.0.1:8000").replace(/\/+$/, "");
const token = process.env["AUTOCURRICULUM_TOKEN"];
const name = process.argv[2] || `ts-demo-${Date.now()}`;

const client = createClient<paths>({
  baseUrl: server,
  headers: token ? { Authorization: `Bearer ${token}` } : {},
});

/** Print what went wrong (the server's error body as it came) and exit with 1. */
function unexpected(what: string, response: Response, error: unknown): never {
  console.error(`${what}: unexpected HTTP ${response.status}: ${JSON.stringify(error)}`);
  process.exit(1);
}

/** One named float of a box task's params. */
function param(task: Task, key: string): number {
  const value = task.params?.[key];
  if (typeof value !== "number") {
    console.error(`task ${task.id}: params.${key} is not a number: ${JSON.stringify(task.params)}`);
    process.exit(1);
  }
  return value;
}

/** A made-up student: tasks near (0.7, 0.3) are easy, far ones hard. */
function play(task: Task): Report {
  const x = param(task, "x");
  const y = param(task, "y");
  const episodeReturn = Math.max(0, 1 - Math.hypot(x - 0.7, y - 0.3));
  return {
    task_id: task.id,
    episode_return: episodeReturn,
    success: episodeReturn > 0.6,
    length: 10 + Math.round(90 * (1 - episodeReturn)),
  };
}

async function main(): Promise<void> {
  console.log(`server ${server}, experiment ${name}`);

  // 1. The teachers this server offers.
  const teachers = await client.GET("/v1/teachers");
  if (teachers.data === undefined) {
    unexpected("GET /v1/teachers", teachers.response, teachers.error);
  }
  const kinds = teachers.data.data.map((t) => t.kind);
  console.log(`teachers: ${kinds.join(", ")}`);

  // 2. An experiment: ALP-GMM over the unit square.
  const created = await client.POST("/v1/experiments", {
    body: {
      name,
      space: {
        kind: "box",
        dims: [
          { name: "x", low: 0, high: 1 },
          { name: "y", low: 0, high: 1 },
        ],
      },
      teacher: { kind: "alp_gmm" },
      seed: 0,
    },
  });
  if (created.data === undefined || created.response.status !== 201) {
    unexpected("POST /v1/experiments", created.response, created.error);
  }
  const experimentId = created.data.id;
  const path = { experiment_id: experimentId };
  console.log(`created experiment ${created.data.name} (${experimentId})`);

  // 3. Rounds of: ask for tasks, "play" them, report the outcomes.
  let tasksReceived = 0;
  let reportsSent = 0;
  let reportsAcked = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const batch = await client.POST("/v1/experiments/{experiment_id}/tasks", {
      params: { path },
      body: { n: BATCH, worker: WORKER },
    });
    if (batch.data === undefined) {
      unexpected("POST .../tasks", batch.response, batch.error);
    }
    const tasks = batch.data.tasks;
    tasksReceived += tasks.length;

    const reports = tasks.map(play);
    const ack = await client.POST("/v1/experiments/{experiment_id}/reports", {
      params: { path },
      body: { reports },
    });
    if (ack.data === undefined) {
      unexpected("POST .../reports", ack.response, ack.error);
    }
    reportsSent += reports.length;
    reportsAcked += ack.data.accepted;
    const mean = reports.reduce((sum, r) => sum + r.episode_return, 0) / reports.length;
    console.log(
      `round ${round}: ${tasks.length} tasks, mean return ${mean.toFixed(3)}, ` +
        `${ack.data.accepted} reports accepted`,
    );
  }

  // 4. The experiment's state as the server sees it.
  const state = await client.GET("/v1/experiments/{experiment_id}/state", { params: { path } });
  if (state.data === undefined) {
    unexpected("GET .../state", state.response, state.error);
  }
  const tasksIssued = state.data.counters.tasks_issued;
  const reportsAccepted = state.data.counters.reports_accepted;
  console.log(
    `state: teacher ${state.data.teacher_kind}, ${tasksIssued} tasks issued, ` +
      `${reportsAccepted} reports accepted`,
  );

  // 5. The error model: every 4xx/5xx body is {"detail": string, "errors": [...] | null}.
  const missingName = `${name}-does-not-exist`;
  const missing = await client.GET("/v1/experiments/{experiment_id}", {
    params: { path: { experiment_id: missingName } },
  });
  if (missing.error === undefined || missing.response.status !== 404) {
    unexpected(`GET /v1/experiments/${missingName}`, missing.response, missing.error);
  }
  const notFoundDetail: string = missing.error.detail;
  console.log(`404 as expected: ${notFoundDetail}`);

  const invalid = await client.POST("/v1/experiments/{experiment_id}/tasks", {
    params: { path },
    body: { n: 0, worker: WORKER },
  });
  if (invalid.error === undefined || invalid.response.status !== 422) {
    unexpected("POST .../tasks with n=0", invalid.response, invalid.error);
  }
  const invalidDetail: string = invalid.error.detail;
  const invalidErrors = invalid.error.errors ?? [];
  const fields = invalidErrors.map((e) => `${e.loc.join(".")}: ${e.msg} [${e.type}]`);
  console.log(`422 as expected: ${invalidDetail} (fields: ${fields.join("; ")})`);

  if (tasksIssued !== tasksReceived || reportsAccepted !== reportsSent) {
    console.error(
      `counters disagree: server issued ${tasksIssued} and accepted ${reportsAccepted}; ` +
        `this client received ${tasksReceived} tasks and sent ${reportsSent} reports`,
    );
    process.exit(1);
  }

  console.log(
    JSON.stringify({
      experiment: name,
      id: experimentId,
      teacher_kind: state.data.teacher_kind,
      teacher_kinds: kinds,
      tasks_received: tasksReceived,
      reports_sent: reportsSent,
      reports_acked: reportsAcked,
      tasks_issued: tasksIssued,
      reports_accepted: reportsAccepted,
      not_found_detail: notFoundDetail,
      invalid_detail: invalidDetail,
      invalid_errors: invalidErrors.length,
    }),
  );
}

main().catch((err: unknown) => {
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
  console.error(`failed talking to ${server}: ${String(err)}${cause}`);
  process.exit(1);
});
