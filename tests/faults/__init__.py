"""Faults and bad input outside the engine's core (issue 11, part A).

Each test drives the real ``lightflow`` command or a real worker against real servers
(a private redis-server, SecantusDB, RabbitMQ where it runs) and checks what the user
sees: one ``Error:`` line and a non-zero exit for bad input, and runs that survive
server restarts and killed workers. ``docs/reliability.md`` lists every case with
the test that shows it.
"""
