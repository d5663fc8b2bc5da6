"""rlvr verifiers as other trainers' rewards: ``trl.make_reward_func``, ``verl.compute_score``."""
