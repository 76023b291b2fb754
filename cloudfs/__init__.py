"""cloudfs: mount a Cloudreve drive through FUSE."""
