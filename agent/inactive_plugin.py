"""A daemon plugin that does nothing: what a plugin becomes when its part is
not configured (no [mqtt] table, no service port on the board)."""


class InactivePlugin:
    def start(self):
        pass

    def stop(self):
        pass

    def alive(self):
        return True
