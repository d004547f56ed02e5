# Freeze the portable core and the board glue into a MicroPython firmware:
#   make -C ports/esp32 FROZEN_MANIFEST=/path/to/daozhang/firmware/manifest.py
# The core is the same code the Linux agent runs (agent/core/); the MQTT
# client is micropython-lib's umqtt.
require("umqtt.simple")
require("umqtt.robust")
package("daozhang", base_path="$(MPY_DIR)/../daozhang-frozen")
module("flash_storage.py")
module("micro_journal.py")
