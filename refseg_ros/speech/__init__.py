"""Speech input for the grounding node: audio I/O, voice-activity detection, offline Whisper
transcription, word error rates and the scene vocabulary. No ROS imports (the node is
``refseg_ros.ros.speech_node``); faster-whisper is imported only when a Transcriber is built."""
