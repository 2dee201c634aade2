"""The tick loop's pure decisions: the tick clock, the guidance policy, voice commands."""
