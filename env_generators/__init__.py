"""Task -> environment: MiniGrid levels, parametric envs and simulated students."""
