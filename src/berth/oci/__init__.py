"""Pure OCI model: digests, media types, descriptors, manifests, indexes, image configs, references,
the runtime spec. stdlib only. May import: berth.errors."""
