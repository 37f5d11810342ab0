"""The demo model's procedural world (shapes) and the pixel measurements that check its images (measure)."""
