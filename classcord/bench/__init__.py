"""``classcord bench``: a load generator, its scenarios, and a baseline server.

The load generator runs its clients in worker processes (one asyncio loop each) that
count lines instead of parsing them: only the timestamps carried by benchmark
messages are read, on a few "probe" clients. The orchestrator in the parent process
spawns the server under test when asked (ClassCord or the thread-per-client
baseline), reads its memory and CPU from ``/proc``, drives the workers through the
scenario's phases and reports the numbers as a table or as JSON.
"""
