"""Drives the unmodified `bambulabs_api` client (PyPI) against printfarmd's simulator.

Why: the simulator stands in for real printers, so a real third-party client must work
against it without patches (issue 22: an extra top-level key in every report killed this
library's MQTT thread). Run by tests/pyclients.rs; prints one line "ok ..." on success,
exits non-zero with what went wrong otherwise.

usage: bambulabs_api_check.py HOST PORT SERIAL ACCESS_CODE CONTROL_URL PRINTER_ID
"""

import json
import sys
import time
import urllib.request

import bambulabs_api as bl

# Every wait is bounded: the simulator prepares in well under a second and the print
# lasts a few seconds; 30 s is a failure guard, not a speed claim.
WAIT_S = 30


def control(url, printer, action, body=None):
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(f"{url}/printers/{printer}/{action}", data=data, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def wait_for(what, check):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the library raises until its first report arrives
            pass
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}")


def main():
    host, port, serial, code, url, printer_id = sys.argv[1:7]
    printer = bl.Printer(host, code, serial)
    # The library's own MQTT client, on the simulator's port (the camera and FTP
    # clients are not used: the simulator has neither).
    printer.mqtt_client = bl.PrinterMQTTClient(host, code, serial, port=int(port))
    printer.mqtt_start()
    wait_for("connected with a report", lambda: printer.mqtt_client_connected() and printer.mqtt_client_ready())
    wait_for("IDLE", lambda: printer.get_state() == bl.GcodeState.IDLE)

    control(url, printer_id, "print", {"file": "pyclient.gcode.3mf", "duration_s": 6})
    wait_for("RUNNING", lambda: printer.get_state() == bl.GcodeState.RUNNING)
    wait_for("the job's name", lambda: printer.subtask_name() == "pyclient")
    wait_for("progress", lambda: int(printer.get_percentage()) > 0)
    # The library's own commands: pause and resume over MQTT.
    printer.pause_print()
    wait_for("PAUSE", lambda: printer.get_state() == bl.GcodeState.PAUSE)
    printer.resume_print()
    wait_for("RUNNING again", lambda: printer.get_state() == bl.GcodeState.RUNNING)
    wait_for("FINISH", lambda: printer.get_state() == bl.GcodeState.FINISH)
    if not printer.mqtt_client_connected():
        sys.exit("the MQTT client lost its connection")
    print(f"ok bambulabs_api {bl.__version__} saw {printer.subtask_name()} start and finish ({printer.get_percentage()} %)")
    printer.mqtt_client.stop()


if __name__ == "__main__":
    main()
