"""Small shared mechanisms: atomic files, locks, syscalls. May import: berth.errors only."""
