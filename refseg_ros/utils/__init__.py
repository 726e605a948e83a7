"""Helpers at the bottom of the import graph (nothing from refseg_ros outside utils): weight locations, device choice, timing, overlay drawing."""
