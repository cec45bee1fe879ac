"""What decides when and whether Factories run: schedules, sensors, conditions and branches,
partition schedules and the observation of external inputs."""
