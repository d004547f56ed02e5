"""Flash a terminal: OS images onto Linux boards' cards, files onto MicroPython boards.

Library first, like mpremote and esptool: every long step reports through
`progress_callback(done, total)` and the CLI (daozhang/cli/device/flash.py)
draws the bar.  Modules, one concept each:

  errors      the typed errors (whose fault, exit code)
  source      open an image (.img, .gz, .xz, .zst) as one stream of bytes
  bmap        read a bmaptool block map (which ranges hold data, their hashes)
  writer      write an image to a file or block device, fsync, read back, compare
  safety      refuse a mounted target, the running system's disk, an oversized one
  partitions  the target's partition table (sfdisk --json)
  fat         read and write files in a FAT partition inside an image (pyfatfs)
  payload     what goes on the boot partition: state dir, unit, first-boot, wheels
  firstboot   the first-boot script (shell, runs on the terminal) as text
  check       re-read a flashed card: image match, which provisioning it carries
  mpy_build   compile the core and firmware glue with mpy-cross 1.29
  board_copy  copy files onto a MicroPython board over mpremote, skip unchanged
  esp32       write MicroPython firmware with esptool (as a library)
"""
