# Freeze the portable core and the board glue into a MicroPython firmware:
#   python firmware/stage.py
#   make -C ports/esp32 FROZEN_MANIFEST=/path/to/daozhang/firmware/manifest.py
# The core is the same code the Linux agent runs (agent/core/, staged as
# build/daozhang/agent/core/); the MQTT client is micropython-lib's umqtt.
# (require/package/module are provided by MicroPython's manifest tooling.)
require("umqtt.simple")
require("umqtt.robust")
package("daozhang", base_path="build")
module("flash_storage.py")
module("micro_journal.py")
