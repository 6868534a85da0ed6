"""`align grpo` / `align rloo`: TRL's GRPOTrainer and RLOOTrainer on our loaded policy (LoRA, 4-bit),
with our reward (a reward model scored at text level, `vader`, or a function) as the reward function."""

from __future__ import annotations

from align.fused_head import score_labelled_positions_only
from align.grpo.config import GRPOConfig
from align.policy import load_policy
from foundation.records import as_chat
from foundation.training import last_checkpoint, save_trained, trainer_arguments

__all__ = ["train_grpo", "as_trl_reward"]


def as_trl_reward(reward_fn):
    """TRL calls `f(prompts=, completions=, **columns)` with chat messages; ours take (prompts, texts)."""
    from foundation.judges import text_of

    def reward(prompts, completions, **_):
        return [float(x) for x in reward_fn(prompts, [text_of(c) for c in completions])]

    reward.__name__ = getattr(reward_fn, "__name__", "reward")
    return reward


def train_grpo(config: GRPOConfig) -> str:
    import trl
    from datasets import Dataset
    from transformers import set_seed

    from foundation.candidates import read_prompts
    from reward.functions import load_reward_function

    set_seed(config.seed)
    model, tokenizer = load_policy(config, padding_side="left")
    rows = [{"prompt": as_chat(p)}
            for p in read_prompts(config.prompts)]
    args_cls, trainer_cls = (trl.GRPOConfig, trl.GRPOTrainer) if config.algorithm == "grpo" \
        else (trl.RLOOConfig, trl.RLOOTrainer)
    args = args_cls(**trainer_arguments(config), num_generations=config.num_generations,
                    max_completion_length=config.max_completion_length, temperature=config.temperature,
                    beta=config.beta, logging_strategy="steps")
    reward = load_reward_function(config.reward_model, device=args.device)   # the process's device
    trainer = trainer_cls(model=model, reward_funcs=as_trl_reward(reward), args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    score_labelled_positions_only(trainer.model)
    trainer.train(resume_from_checkpoint=last_checkpoint(config.output_dir) if config.resume else None)
    return save_trained(trainer, tokenizer, config)
