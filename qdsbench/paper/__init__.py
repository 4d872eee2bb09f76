"""Paper reproduction: manifests (conf/paper/<paper>.yaml), running their grids, and building result tables."""
