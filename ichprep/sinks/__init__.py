"""Where rendered images go: image files, or HDF5 shards."""
