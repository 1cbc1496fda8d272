"""Students: Ray rollout workers, PPO learner, evaluator, gymnasium wrapper (later issues)."""
