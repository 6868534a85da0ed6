"""`align generate --model M [--adapter DIR] --prompts FILE --n 2 --out candidates.jsonl`."""

from __future__ import annotations

from align.cli import ArgumentParser
from align.rollout import ENGINE_HELP, ENGINES


def main(argv: list[str]) -> int:
    parser = ArgumentParser(prog="align generate",
                            description="Sample K candidate responses per prompt, with provenance.")
    parser.add_argument("--model", required=True,
                        help="Base model (hub id, folder, builtin:ALIAS) or an adapter folder.")
    parser.add_argument("--adapter", help="A LoRA adapter folder to apply on --model.")
    parser.add_argument("--prompts", required=True,
                        help=".txt (one per line), JSONL with `prompt`, or a preference file.")
    parser.add_argument("--out", required=True,
                        help="Candidates JSONL (what `align label import --format candidates` reads).")
    parser.add_argument("--n", type=int, default=2, help="Responses per prompt (default 2).")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top_p", "--top-p", type=float, default=1.0)
    parser.add_argument("--max_new_tokens", "--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch_size", "--batch-size", type=int, default=64,
                        help="responses sampled together (64: decoding is bound by reading the weights)")
    parser.add_argument("--max_prompts", "--max-prompts", type=int, help="Use only the first N prompts.")
    parser.add_argument("--quantization", choices=["none", "4bit", "8bit"], default="none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n must be at least 1, got {args.n}")

    from align.policy import Policy
    from foundation.candidates import Candidate, CandidateSet, read_prompts, write_candidates

    prompts = read_prompts(args.prompts)[: args.max_prompts]
    policy = Policy.from_pretrained(args.model, adapter=args.adapter, quantization=args.quantization,
                                    engine=args.engine)
    generations = policy.generate(prompts, n=args.n, temperature=args.temperature, top_p=args.top_p,
                                  max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                  seed=args.seed, progress=True)
    sets = [CandidateSet(f"p-{i:05d}", list(p), [
        Candidate(g.text, model=policy.name, adapter=policy.adapter,
                  sampling={**g.sampling, "seed": args.seed}, logprobs=g.logprobs, finished=g.finished)
        for g in gens])
        for i, (p, gens) in enumerate(zip(prompts, generations))]
    write_candidates(sets, args.out)
    unfinished = sum(not g.finished for gens in generations for g in gens)
    print(f"wrote {len(sets)} prompts x {args.n} responses to {args.out} "
          f"({unfinished} cut at max_new_tokens={args.max_new_tokens})")
    return 0
