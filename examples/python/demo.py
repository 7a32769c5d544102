#!/usr/bin/python3
"""stomp.py against stompbus: connect, subscribe, send, client acks, transactions.

    /usr/bin/python3 examples/python/demo.py --tcp 127.0.0.1:61613
    /usr/bin/python3 examples/python/demo.py --ws ws://127.0.0.1:61614/stomp

Prints one JSON object per line (what it sent, what arrived) and exits 0 when
every step went as STOMP 1.2 says, 1 otherwise. Destinations are
/queue/<prefix>.jobs, /queue/<prefix>.inbox and /topic/<prefix>.chat
(--prefix, default "demo"); see README.md for each step.
"""

import argparse
import json
import os
import queue
import sys
import threading

import stomp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stomp_ws import WSStompConnection12  # noqa: E402

WAIT = 5.0  # seconds for any one frame: generous, every step takes milliseconds


class Failed(Exception):
    """A step did not get the frame STOMP says it should."""


def log(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


class Recorder(stomp.ConnectionListener):
    """Hands MESSAGE frames to one queue per subscription and remembers receipts."""

    def __init__(self):
        self.inboxes = {}
        self.receipts = set()
        self.errors = []
        self.connected = None
        self.changed = threading.Condition()

    def inbox(self, subscription):
        return self.inboxes.setdefault(subscription, queue.Queue())

    def on_connected(self, frame):
        self.connected = frame.headers

    def on_message(self, frame):
        self.inbox(frame.headers.get("subscription")).put(frame)

    def on_receipt(self, frame):
        with self.changed:
            self.receipts.add(frame.headers["receipt-id"])
            self.changed.notify_all()

    def on_error(self, frame):
        with self.changed:
            self.errors.append({"message": frame.headers.get("message"), "body": frame.body})
            self.changed.notify_all()


class Demo:
    def __init__(self, conn, prefix):
        self.conn = conn
        self.rec = Recorder()
        conn.set_listener("recorder", self.rec)
        self.jobs = f"/queue/{prefix}.jobs"
        self.inbox = f"/queue/{prefix}.inbox"
        self.chat = f"/topic/{prefix}.chat"
        self.receipt_no = 0

    def receipt(self):
        """A fresh receipt id."""
        self.receipt_no += 1
        return f"r{self.receipt_no}"

    def await_receipt(self, receipt):
        with self.rec.changed:
            done = self.rec.changed.wait_for(
                lambda: receipt in self.rec.receipts or self.rec.errors, WAIT
            )
        if self.rec.errors:
            raise Failed(f"ERROR while waiting for receipt {receipt}: {self.rec.errors[0]}")
        if not done:
            raise Failed(f"no RECEIPT {receipt} within {WAIT}s")

    def send(self, destination, body, **headers):
        """SEND with a receipt, and wait for it."""
        receipt = self.receipt()
        self.conn.send(destination, body, headers={**headers, "receipt": receipt})
        self.await_receipt(receipt)
        log("sent", destination=destination, body=body, **headers)

    def frame(self, subscription, wait=WAIT):
        try:
            frame = self.rec.inbox(subscription).get(timeout=wait)
        except queue.Empty:
            raise Failed(f"no MESSAGE on subscription {subscription} within {wait}s") from None
        h = frame.headers
        log(
            "received",
            subscription=subscription,
            destination=h.get("destination"),
            body=frame.body,
            redelivered=h.get("redelivered") == "true",
        )
        return frame

    def nothing(self, subscription, wait=0.3):
        """Checks that no MESSAGE arrives on `subscription` for `wait` seconds."""
        try:
            frame = self.rec.inbox(subscription).get(timeout=wait)
        except queue.Empty:
            return
        raise Failed(f"unexpected MESSAGE on {subscription}: {frame.body!r}")

    def expect(self, frame, body, redelivered=False):
        got = (frame.body, frame.headers.get("redelivered") == "true")
        if got != (body, redelivered):
            raise Failed(f"expected {(body, redelivered)}, got {got}")

    def step(self, name):
        log("step", name=name)

    def run(self, login, passcode, inbox_count):
        self.step("connect")
        self.conn.connect(login, passcode, wait=True)
        h = self.rec.connected or {}
        log("connected", version=h.get("version"), server=h.get("server"), user=h.get("user-name"))

        self.step("subscribe")
        self.conn.subscribe(self.chat, id="chat", ack="auto")
        # A queue keeps messages while nobody consumes: these wait for the subscription.
        for n in (1, 2, 3):
            self.send(self.jobs, f"job-{n}")
        receipt = self.receipt()
        self.conn.subscribe(self.jobs, id="jobs", ack="client-individual", receipt=receipt)
        self.await_receipt(receipt)

        self.step("client-individual acks, a NACK redelivers")
        job1, job2 = self.frame("jobs"), self.frame("jobs")
        self.expect(job1, "job-1")
        self.expect(job2, "job-2")
        self.conn.ack(job1.headers["ack"])
        self.conn.nack(job2.headers["ack"])
        job3, again = self.frame("jobs"), self.frame("jobs")
        self.expect(job3, "job-3")
        self.expect(again, "job-2", redelivered=True)
        self.conn.ack(job3.headers["ack"])
        self.conn.ack(again.headers["ack"])

        self.step("a committed transaction delivers its SENDs at COMMIT")
        self.conn.begin("tx-commit")
        for n in (1, 2):
            self.conn.send(self.chat, f"committed-{n}", transaction="tx-commit")
        self.nothing("chat")
        receipt = self.receipt()
        self.conn.commit("tx-commit", receipt=receipt)
        self.await_receipt(receipt)
        self.expect(self.frame("chat"), "committed-1")
        self.expect(self.frame("chat"), "committed-2")

        self.step("an aborted transaction delivers nothing")
        self.conn.begin("tx-abort")
        self.conn.send(self.chat, "aborted", transaction="tx-abort")
        self.conn.abort("tx-abort")
        # Frames are handled in order: had "aborted" gone out, it would arrive first.
        self.send(self.chat, "after-abort")
        self.expect(self.frame("chat"), "after-abort")

        self.step("an ACK in an aborted transaction does not count; a committed one does")
        self.send(self.jobs, "job-4")
        job4 = self.frame("jobs")
        self.expect(job4, "job-4")
        self.conn.begin("tx-ack-abort")
        self.conn.ack(job4.headers["ack"], transaction="tx-ack-abort")
        self.conn.abort("tx-ack-abort")
        self.conn.begin("tx-ack-commit")
        self.conn.ack(job4.headers["ack"], transaction="tx-ack-commit")
        receipt = self.receipt()
        # Had the aborted ACK counted, this one would be refused (STOMP_ERR_UNKNOWN_ACK).
        self.conn.commit("tx-ack-commit", receipt=receipt)
        self.await_receipt(receipt)

        self.step("a message left unacknowledged goes back to the queue")
        self.send(self.jobs, "job-5")
        self.expect(self.frame("jobs"), "job-5")

        if inbox_count > 0:
            self.step("client (cumulative) acks: one ACK covers every earlier message")
            self.conn.subscribe(self.inbox, id="inbox", ack="client")
            frames = [self.frame("inbox") for _ in range(inbox_count)]
            receipt = self.receipt()
            self.conn.ack(frames[-1].headers["ack"], receipt=receipt)
            self.await_receipt(receipt)

        self.step("disconnect")
        self.conn.disconnect(receipt=self.receipt())
        if self.rec.errors:
            raise Failed(f"ERROR frames: {self.rec.errors}")
        log("done")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--tcp", metavar="HOST:PORT", help="STOMP over TCP (default 127.0.0.1:61613)")
    where.add_argument("--ws", metavar="URL", help="STOMP over WebSocket, e.g. ws://127.0.0.1:61614/stomp")
    parser.add_argument("--login", default="python")
    parser.add_argument("--passcode", default="")
    parser.add_argument("--prefix", default="demo", help="destination name prefix")
    parser.add_argument(
        "--inbox", type=int, default=0, metavar="N",
        help="also consume N messages that wait in /queue/<prefix>.inbox",
    )
    args = parser.parse_args()

    if args.ws:
        conn = WSStompConnection12(args.ws)
        log("transport", kind="websocket", url=args.ws)
    else:
        host, _, port = (args.tcp or "127.0.0.1:61613").rpartition(":")
        conn = stomp.Connection12([(host, int(port))], timeout=WAIT, reconnect_attempts_max=1)
        log("transport", kind="tcp", host=host, port=int(port))
    demo = Demo(conn, args.prefix)
    try:
        demo.run(args.login, args.passcode, args.inbox)
    except (Failed, stomp.exception.StompException, OSError) as error:
        log("failed", error=f"{type(error).__name__}: {error}")
        sys.exit(1)
    finally:
        if conn.is_connected():
            conn.disconnect()


if __name__ == "__main__":
    main()
