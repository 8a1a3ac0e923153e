"""``spawnhang bisect``: which release of a dependency brought a hang (or ended it).

versions: what the index offers; envs: one cached environment per version, layered on the
current one (also for pinning verdicts per version in a test); steps: the search; page:
bisect.json and bisect.html; session: the command's run; command: its arguments. Nothing is
imported here, so that the CLI's start-up does not pay for this command.
"""
