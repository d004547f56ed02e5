# Freeze the whole terminal into a MicroPython 1.29 firmware (ESP32-S3):
#   python firmware/stage.py
#   make -C ports/esp32 BOARD=ESP32_GENERIC_S3 FROZEN_MANIFEST=/path/to/daozhang/firmware/manifest.py
# Frozen: the portable core (agent/core, as daozhang.agent.core), the board
# code (firmware/, as daozhang.firmware: main loop, terminal rules, flash
# partition storage, Ed25519 + SHA-512 signer), the boot script main.py, and
# micropython-lib's umqtt for sync and its ssd1306 display driver.  Frozen bytecode runs from flash, so
# none of it takes heap.  (require/package/module come from MicroPython's
# manifest tooling.)
require("umqtt.simple")
require("umqtt.robust")
require("ssd1306")        # the board file's display kind "ssd1306" (firmware/display.py)
require("usb-device-cdc") # board.json service.port "usb_cdc": the service port on a second CDC port
package("daozhang", base_path="build")
module("main.py", base_path="build")
