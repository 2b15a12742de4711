"""camdrive's drivers: scripted drivers and the CNN driving policies (PilotNet, DQN)."""
