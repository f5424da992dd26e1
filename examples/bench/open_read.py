import os
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "open_read.py")
for _ in range(20_000):
    with open(path) as file:
        file.read()
