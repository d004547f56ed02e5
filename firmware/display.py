"""The terminal's display, behind one method: `show(text)`.

Outputs (firmware/terminal.py) calls show() with the alert summary line when
it changes.  Drivers, chosen by the board file's `[mcu] display.kind`:

- "ssd1306": a 128x64 (or other) I2C OLED through micropython-lib's
  `ssd1306` driver (frozen with the firmware when the board has one); the
  text is wrapped to the panel's 8-pixel font, as many lines as fit;
- "console": print() to the USB REPL console (boards without a panel);
- "none": nothing shown (the LED and buzzer still work).
"""

FONT_PX = 8


def wrap(text, columns, rows):
    """Lines of at most `columns` characters, at most `rows` of them."""
    lines = []
    for paragraph in text.split("\n"):
        while paragraph and len(lines) < rows:
            lines.append(paragraph[:columns])
            paragraph = paragraph[columns:]
    return lines[:rows]


class Ssd1306Display:
    def __init__(self, panel, width, height):
        self.panel = panel                 # ssd1306.SSD1306_I2C (fill, text, show)
        self.columns = width // FONT_PX
        self.rows = height // FONT_PX

    def show(self, text):
        self.panel.fill(0)
        for row, line in enumerate(wrap(text, self.columns, self.rows)):
            self.panel.text(line, 0, row * FONT_PX, 1)
        self.panel.show()


class ConsoleDisplay:
    def show(self, text):
        print("display:", text)


class ActiveLowPin:
    """A Pin wired so 0 lights it: value(1) drives it low."""

    def __init__(self, pin):
        self.pin = pin

    def value(self, v=None):
        if v is None:
            return 1 - self.pin.value()
        self.pin.value(0 if v else 1)
