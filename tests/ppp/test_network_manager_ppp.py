"""The application's NetworkManager on the chip with its PPP link backend (frozen
iotlib.network_manager.PPPLink over network.PPP): the link comes up, a peer hang-up is seen as
a drop, and the manager connects again by itself."""

from link import BoardCode

MANAGER = """
import asyncio
from iotlib.network_manager import NetworkManager, board_link
n = NetworkManager("ppp", "unused-password", board_link({"link": "ppp"}), connect_timeout_ms=20000,
                   backoff_min_ms=200, backoff_max_ms=1000, check_ms=100)
changes = []
n.on_change(changes.append)

async def main():
    task = asyncio.create_task(n.run())
    await asyncio.wait_for_ms(n.wait_up(), 30000)
    print("up", n.health()["ip"])
    while False not in changes:  # the manager may reconnect before a poll of n.up sees it down
        await asyncio.sleep_ms(50)
    print("down")
    await asyncio.wait_for_ms(n.wait_up(), 30000)
    task.cancel()
    h = n.health()
    print("again", h["ip"], h["drops"], h["reconnects"], changes)

asyncio.run(main())
"""


def test_manager_over_ppp_survives_a_hangup(ppp_board):
    b = ppp_board
    b.start()
    run = BoardCode(b, MANAGER)
    b.wait_for(lambda: run.done() or "up 10.0.2.15" in run.text, 120, "the link up")
    assert "up 10.0.2.15" in run.text
    with b.lock:
        b.peer.hangup()
    b.wait_for(lambda: run.done() or "down" in run.text, 120, "the drop seen")
    out, err = run.result(120)
    assert err == ""
    assert out.strip().splitlines()[-1] == "again 10.0.2.15 1 1 [True, False, True]"
    assert b.peer.ip_up
