"""Guest kernels under qemu: the exported scenarios run on Debian's 6.1 and 6.12 (docs/guests.md)."""
