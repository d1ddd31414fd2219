"""Small helpers shared by every part of the package (atomic files, PNG output, seed ranges)."""
