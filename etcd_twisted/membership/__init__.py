"""Members, their ids, the cluster id, and learners."""
