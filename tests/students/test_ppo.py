"""PPO for MiniGrid students (student_workers/ppo.py, collector.py): GAE and level scores by
hand, checkpoints, and learning from near 0 to a high solve rate on small empty rooms."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from torch.distributions import Categorical

from env_generators.levels import empty_level
from env_generators.minigrid_env import LevelEnv
from student_workers.collector import RolloutCollector
from student_workers.eval_episodes import run_episodes
from student_workers.ppo import (
    EpisodeScorer,
    PPOConfig,
    PPOLearner,
    Rollout,
    _log_prob_entropy,
    _split,
    compute_gae,
    concat_rollouts,
)


class EmptyRooms(gym.Wrapper):
    """A new empty room (random agent and goal) at every reset."""

    def __init__(self, size: int, seed: int, max_steps: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.size = size
        super().__init__(LevelEnv(empty_level(size, self.rng), max_steps=max_steps))

    def reset(self, **kwargs):
        self.env.unwrapped.set_level(empty_level(self.size, self.rng))
        return self.env.reset(**kwargs)


def rooms(n: int, size: int = 9, max_steps: int = 30, seed: int = 0) -> SyncVectorEnv:
    fns = [lambda i=i: EmptyRooms(size, seed * 1000 + i, max_steps) for i in range(n)]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def test_gae_by_hand() -> None:
    # One env, 3 steps, an episode ends after step 1 (step 2 starts a new one).
    rewards = np.array([[0.0], [1.0], [0.5]])
    values = np.array([[0.2], [0.4], [0.1]])
    dones = np.array([[1.0], [0.0], [1.0]])
    g, lam = 0.9, 0.8
    adv, ret = compute_gae(rewards, values, dones, np.array([0.3]), np.array([0.0]), g, lam)
    d2 = 0.5 + g * 0.3 - 0.1
    d1 = 1.0 - 0.4  # terminal: no bootstrap from the next episode
    d0 = 0.0 + g * 0.4 - 0.2
    np.testing.assert_allclose(adv[:, 0], [d0 + g * lam * d1, d1, d2])
    np.testing.assert_allclose(ret, adv + values)


def test_episode_scores_by_hand_across_rollouts() -> None:
    scorer = EpisodeScorer(1)

    def rollout(adv, val, dones, last_done) -> Rollout:
        z = np.zeros((len(adv), 1))
        return Rollout(
            images=z, directions=z, actions=z, logprobs=z, rewards=z,
            dones=np.array(dones, dtype=float)[:, None], values=np.array(val)[:, None],
            last_value=np.zeros(1), last_done=np.array([last_done], dtype=float), train_mask=z,
            advantages=np.array(adv)[:, None], returns=z,
        )  # fmt: skip

    # An episode of 4 steps spread over two rollouts: A = [0.5, -0.2 | 0.1, -0.4].
    assert scorer.add(rollout([0.5, -0.2], [1.0, 2.0], [1, 0], 0)) == []
    ((t, env, s),) = scorer.add(rollout([0.1, -0.4], [3.0, 4.0], [0, 0], 1))
    assert (t, env) == (1, 0)
    assert s["positive_value_loss"] == pytest.approx((0.5 + 0.1) / 4)
    assert s["l1_value_loss"] == pytest.approx((0.5 + 0.2 + 0.1 + 0.4) / 4)
    assert s["mean_value"] == pytest.approx(2.5)


def test_config_is_validated_with_reference_defaults() -> None:
    c = PPOConfig()
    assert (c.gamma, c.gae_lambda, c.clip_coef, c.learning_rate) == (0.995, 0.95, 0.2, 1e-4)
    with pytest.raises(ValueError):
        PPOConfig(gamma=1.5)
    with pytest.raises(ValueError):
        PPOConfig(unknown=1)


def solve_rate(learner: PPOLearner, episodes: int = 64) -> float:
    env = EmptyRooms(9, 99, 30)
    return run_episodes(learner.agent, env, episodes, greedy=True, seed=99)["solve_rate"]


def test_ppo_learns_small_empty_rooms_on_cpu() -> None:
    """9x9 rooms (7x7 inside), random agent and goal, 30-step cap: a random policy solves
    about a fifth; PPO must reach >= 0.8 within 80k steps."""
    torch.set_num_threads(1)
    cfg = PPOConfig(
        num_steps=128, learning_rate=5e-4, update_epochs=4, num_minibatches=4,
        ent_coef=0.01, gamma=0.99,
    )  # fmt: skip
    learner = PPOLearner(cfg, device="cpu", seed=0)
    before = solve_rate(learner)
    collector = RolloutCollector(rooms(8), seed=0)
    scorer = EpisodeScorer(8)
    scored = finished = 0
    for _ in range(80):
        ro, log = collector.collect(learner.agent, cfg.num_steps)
        learner.finish(ro)
        scores = scorer.add(ro)
        # The scorer and the collector agree on which episodes ended, and where.
        assert [(t, e) for t, e, _ in scores] == [(t, e) for t, e, _, _ in log.episodes]
        scored += len(scores)
        finished += len(log.episodes)
        learner.update(ro)
    after = solve_rate(learner)
    assert before < 0.5 and after >= 0.8, (before, after)
    assert scored == finished > 1000  # a level score for every finished episode
    # A checkpoint loads anywhere and acts identically.
    clone = PPOLearner.from_checkpoint(learner.checkpoint(), device="cpu")
    img = torch.as_tensor(collector.obs["image"])
    d = torch.as_tensor(collector.obs["direction"])
    a1 = learner.agent.act(img, d, greedy=True)[0]
    assert torch.equal(a1, clone.agent.act(img, d, greedy=True)[0])
    assert clone.updates == 80


def test_collector_refuses_next_step_autoreset() -> None:
    envs = SyncVectorEnv([lambda: EmptyRooms(6, 0, 20)])
    with pytest.raises(ValueError, match="SAME_STEP"):
        RolloutCollector(envs)


def test_explore_steps_get_no_gradient() -> None:
    cfg = PPOConfig(num_steps=16)
    learner = PPOLearner(cfg, device="cpu", seed=0)
    collector = RolloutCollector(rooms(2), seed=0)
    collector.train_flags[:] = 0.0  # every env plays explore tasks
    ro, _ = collector.collect(learner.agent, 16)
    learner.finish(ro)
    before = {k: v.clone() for k, v in learner.agent.state_dict().items()}
    assert learner.update(ro) == {"trained_steps": 0.0, "optimizer_steps": 0.0}
    after = learner.agent.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_minibatch_count_by_hand() -> None:
    """num_minibatches per pass; with fixed_minibatch that many times the train share,
    rounded, at least one (the sample count per minibatch of an unmasked rollout)."""
    mask = np.zeros((16, 16), dtype=bool)
    mask[:, :7] = True  # 7/16 of the steps train: 4 * 7/16 = 1.75 -> 2
    mask[:8, 7] = True  # plus half an env: 4 * 7.5/16 = 1.875 -> 2
    free = PPOLearner(PPOConfig(num_minibatches=4), device="cpu")
    fixed = PPOLearner(PPOConfig(num_minibatches=4, fixed_minibatch=True), device="cpu")
    assert free.minibatch_count(mask) == 4 and fixed.minibatch_count(mask) == 2
    assert fixed.minibatch_count(np.ones((16, 16), dtype=bool)) == 4  # DR: unchanged
    one_step = np.zeros((16, 16), dtype=bool)
    one_step[3, 5] = True
    assert fixed.minibatch_count(one_step) == 1  # never zero while anything trains
    mask[:, 7:13] = True  # 13/16: 3.25 -> 3
    assert fixed.minibatch_count(mask) == 3
    # Minibatches of near-equal size, exactly `chunks` of them (fewer for a shorter order).
    assert [len(c) for c in _split(torch.arange(9), 4)] == [3, 2, 2, 2]
    assert [len(c) for c in _split(torch.arange(2), 4)] == [1, 1]


@pytest.mark.parametrize("lstm", [False, True])
def test_fixed_minibatch_takes_fewer_steps_on_masked_rollouts(lstm: bool) -> None:
    """Half the envs explore: without fixed_minibatch the pass still takes num_minibatches
    (half-size) minibatches; with it, half as many full-size ones."""
    steps = {}
    for fixed in (False, True):
        cfg = PPOConfig(
            num_steps=8, num_minibatches=4, update_epochs=3, lstm=lstm, hidden=16,
            fixed_minibatch=fixed,
        )  # fmt: skip
        learner = PPOLearner(cfg, device="cpu", seed=0)
        collector = RolloutCollector(rooms(8), seed=0)
        collector.train_flags[4:] = 0.0
        ro, _ = collector.collect(learner.agent, cfg.num_steps)
        stats = learner.update(learner.finish(ro))
        assert stats["trained_steps"] == 32.0
        steps[fixed] = stats["optimizer_steps"]
    assert steps == {False: 3 * 4.0, True: 3 * 2.0}


def test_lstm_sequence_matches_step_by_step_with_resets() -> None:
    """The recurrent update re-computes exactly what the agent saw while acting, including
    the state reset where an episode starts mid-rollout."""
    cfg = PPOConfig(lstm=True, hidden=32, num_steps=24)
    learner = PPOLearner(cfg, device="cpu", seed=3)
    collector = RolloutCollector(rooms(3, max_steps=7), seed=3)
    collector.collect(learner.agent, 5)  # a non-zero state before the rollout
    ro, log = collector.collect(learner.agent, cfg.num_steps)
    assert ro.initial_state is not None and np.abs(ro.initial_state[0]).sum() > 0
    assert log.episodes  # episodes ended inside the rollout (7-step cap)
    logp, _, value = learner.agent.evaluate_sequence(
        torch.as_tensor(ro.images), torch.as_tensor(ro.directions),
        torch.as_tensor(ro.actions), torch.as_tensor(ro.dones),
        tuple(torch.as_tensor(x) for x in ro.initial_state),
    )  # fmt: skip
    np.testing.assert_allclose(logp.detach().numpy(), ro.logprobs, atol=1e-5)
    np.testing.assert_allclose(value.detach().numpy(), ro.values, atol=1e-5)
    # Without the resets the values differ: the reset is what makes them match.
    _, _, no_reset = learner.agent.evaluate_sequence(
        torch.as_tensor(ro.images), torch.as_tensor(ro.directions),
        torch.as_tensor(ro.actions), torch.zeros(ro.dones.shape),
        tuple(torch.as_tensor(x) for x in ro.initial_state),
    )  # fmt: skip
    assert not np.allclose(no_reset.detach().numpy(), ro.values, atol=1e-5)


def test_lstm_ppo_learns_and_checkpoints() -> None:
    torch.set_num_threads(1)
    cfg = PPOConfig(
        num_steps=128, learning_rate=5e-4, update_epochs=4, num_minibatches=4,
        ent_coef=0.01, gamma=0.99, lstm=True, hidden=64,
    )  # fmt: skip
    learner = PPOLearner(cfg, device="cpu", seed=0)
    before = solve_rate(learner)
    collector = RolloutCollector(rooms(8), seed=0)
    for _ in range(50):
        ro, _ = collector.collect(learner.agent, cfg.num_steps)
        learner.update(learner.finish(ro))
    after = solve_rate(learner)
    assert before < 0.5 and after >= 0.75, (before, after)
    clone = PPOLearner.from_checkpoint(learner.checkpoint(), device="cpu")
    assert clone.agent.recurrent and clone.config.lstm
    assert solve_rate(clone) == after


def test_concat_rollouts_side_by_side() -> None:
    learner = PPOLearner(PPOConfig(lstm=True, hidden=16), device="cpu", seed=0)
    parts = []
    for seed, n in ((0, 2), (1, 3)):
        ro, _ = RolloutCollector(rooms(n, seed=seed), seed=seed).collect(learner.agent, 6)
        parts.append(learner.finish(ro))
    both = concat_rollouts(parts)
    assert both.num_envs == 5 and both.num_steps == 6
    np.testing.assert_array_equal(both.actions[:, 2:], parts[1].actions)
    np.testing.assert_array_equal(both.last_value[:2], parts[0].last_value)
    assert both.initial_state[0].shape == (1, 5, 16)
    with pytest.raises(ValueError, match="same number of steps"):
        concat_rollouts([parts[0], RolloutCollector(rooms(1), seed=0).collect(learner.agent, 4)[0]])
    assert learner.update(both)["trained_steps"] == 30.0


def test_lstm_stretches_match_a_step_by_step_loop_with_gradients() -> None:
    """The LSTM runs in one call per stretch between episode starts; outputs, final state and
    gradients are those of zeroing the state and stepping one step at a time."""
    torch.manual_seed(0)
    agent = PPOLearner(PPOConfig(lstm=True, hidden=16), device="cpu", seed=1).agent
    steps, batch = 20, 3
    feats = torch.randn(steps * batch, 16, requires_grad=True)
    done = torch.zeros(steps, batch)
    done[0, 1] = done[4, 0] = done[5, 2] = done[5, 0] = done[19, 1] = 1.0  # incl. t = 0, T - 1
    state = (torch.randn(1, batch, 16), torch.randn(1, batch, 16))

    def step_by_step(x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, c = state
        outs = []
        for t, xt in enumerate(x.reshape(steps, batch, 16)):
            keep = (1.0 - done[t]).view(1, -1, 1)
            out, (h, c) = agent.lstm(xt[None], (h * keep, c * keep))
            outs.append(out)
        return torch.cat(outs).reshape(-1, 16), (h, c)

    out, (h, c) = agent._core(feats, state, done)
    ref, (h_ref, c_ref) = step_by_step(feats)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(c, c_ref)
    (grad,) = torch.autograd.grad(out.square().sum() + h.sum(), feats)
    (grad_ref,) = torch.autograd.grad(ref.square().sum() + h_ref.sum(), feats)
    torch.testing.assert_close(grad, grad_ref)


def test_policy_terms_match_torch_categorical() -> None:
    logits = torch.tensor([[0.3, -1.2, 2.0], [-50.0, 0.0, 50.0], [0.0, 0.0, 0.0]])
    action = torch.tensor([2, 0, 1])
    agent = PPOLearner(PPOConfig(hidden=16), device="cpu", seed=0).agent
    logp, entropy = _log_prob_entropy(logits, action)
    dist = Categorical(logits=logits)
    torch.testing.assert_close(logp, dist.log_prob(action))
    torch.testing.assert_close(entropy, dist.entropy())
    # acting samples from the softmax of the logits with the given generator: reproducible
    image, direction = torch.zeros(64, 5, 5, 3, dtype=torch.uint8), torch.zeros(64).long()
    a1 = agent.act(image, direction, generator=torch.Generator().manual_seed(5))[0]
    a2 = agent.act(image, direction, generator=torch.Generator().manual_seed(5))[0]
    assert torch.equal(a1, a2) and set(a1.tolist()) == {0, 1, 2}
