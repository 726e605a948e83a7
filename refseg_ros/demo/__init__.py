"""The end-to-end demo: a simulated camera, the grounding node, scripted spoken commands, scores.

``script`` (commands from the ground truth) and ``scoring`` (IoU, 3D error, summary files) are
pure; ``runner`` starts the ROS processes and talks to them (``refseg demo``, ``make demo``).
"""
