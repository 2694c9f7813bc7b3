"""Storage backends for registered clusters, all keeping ``ClusterRepository``."""
