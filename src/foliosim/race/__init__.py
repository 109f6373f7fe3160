"""foliosim race: litmus tests of the lazyfree unmap path, recorded from the model, judged by herd7.

record (the model's try_to_unmap_one() as the reclaim CPU) -> actors (GUP-fast,
a GUP user) -> litmus (C / X86 / AArch64) -> runner (herd7) or sc (every
interleaving) -> check (verdicts) -> witness (the story).  herd finds or
builds herd7.  docs/race.md.
"""
