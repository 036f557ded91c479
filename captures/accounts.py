"""The test accounts, read from the files Dovecot and the scripted peer use."""


def load_users(path):
    """user -> password, from the passwd-file Dovecot authenticates with."""
    users = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            user, password = line.split(":")[:2]
            users[user] = password
    return users


def load_tokens(path):
    """user -> the fake OAuth bearer token peer.py accepts for that user."""
    tokens = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            user, token = line.split()
            tokens[user] = token
    return tokens
