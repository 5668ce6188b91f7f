"""The stand-ins for development, tests and the demo: the emulator, the simulated pedal,
the link emulator, the scripted phone."""

# The publishable key the emulator registers for its demo app (and the simulated
# pedal's default client_id, for signing in against the emulator).
EMULATOR_CLIENT_ID = "t3k_pub_tonebridge_demo"
