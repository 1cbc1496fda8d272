// Server-sent events over fetch(): the browser's EventSource cannot send an Authorization
// header, so the dashboard reads the stream's body itself and parses it here, following
// the WHATWG "event stream interpretation" rules (fields event/data/id, ":" comments,
// any of \n, \r\n, \r as line ends, which may be split across chunks).

/**
 * Parse a server-sent-events byte stream (fetch body) into events, by hand: the
 * EventSource API cannot send an Authorization header.
 *
 * ``onEvent({event, id, data})`` runs per complete event; ``onBytes()`` on every chunk
 * (keep-alive comments included), which feeds the stall watchdog.
 */
export async function readEvents(reader, onEvent, onBytes = () => {}) {
  const decoder = new TextDecoder(); // strips a leading BOM, joins split UTF-8 sequences
  let buf = "";
  let ev = { event: "message", id: null, data: [] };

  const line = (text) => {
    if (text === "") { // blank line: dispatch (an event without data is dropped)
      if (ev.data.length) onEvent({ event: ev.event, id: ev.id, data: ev.data.join("\n") });
      ev = { event: "message", id: ev.id, data: [] }; // the last id persists
      return;
    }
    if (text.startsWith(":")) return; // comment: the server's keep-alive
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let val = colon < 0 ? "" : text.slice(colon + 1);
    if (val.startsWith(" ")) val = val.slice(1);
    if (field === "event") ev.event = val;
    else if (field === "data") ev.data.push(val);
    else if (field === "id" && !val.includes("\0")) ev.id = val;
    // "retry" is ignored: the caller reconnects with its own capped backoff
  };

  // Feed every complete line of ``buf`` to line(). A "\r" at the very end of the buffer
  // may be the first half of a "\r\n" split across chunks: it waits for the next chunk,
  // unless the stream is over (``final``).
  const drain = (final) => {
    const re = final ? /\r\n|\n|\r/g : /\r\n|\n|\r(?!$)/g;
    let start = 0;
    let m;
    while ((m = re.exec(buf)) !== null) {
      line(buf.slice(start, m.index));
      start = re.lastIndex;
    }
    buf = buf.slice(start);
  };

  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      buf += decoder.decode();
      drain(true); // a last event without its blank line is incomplete: dropped, as per spec
      return;
    }
    onBytes();
    buf += decoder.decode(value, { stream: true });
    drain(false);
  }
}
