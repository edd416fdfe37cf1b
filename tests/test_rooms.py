"""Rooms: membership as a plain data structure."""

from __future__ import annotations

from tether.rooms import Rooms


def make(*sids: str) -> Rooms[str]:
    rooms: Rooms[str] = Rooms()
    for sid in sids:
        rooms.add(sid, f"sock-{sid}")
    return rooms


def test_every_member_is_in_its_own_sid_room() -> None:
    rooms = make("a", "b")
    assert rooms.rooms_of("a") == {"a"}
    assert rooms.members("a") == {"a": "sock-a"}
    assert len(rooms) == 2 and "a" in rooms and "zz" not in rooms
    assert rooms.get("a") == "sock-a" and rooms.get("zz") is None
    assert rooms.all_rooms() == []


def test_join_leave() -> None:
    rooms = make("a", "b")
    assert rooms.join("a", "r1") and rooms.join("b", "r1") and rooms.join("a", "r2")
    assert not rooms.join("nobody", "r1")
    assert rooms.rooms_of("a") == {"a", "r1", "r2"}
    assert rooms.room_count_of("a") == 2  # named rooms only: the sid room is implicit
    assert list(rooms.members("r1")) == ["a", "b"]
    assert sorted(rooms.all_rooms()) == ["r1", "r2"]
    rooms.leave("a", "r2")
    assert "r2" not in rooms.all_rooms()  # empty rooms are dropped
    rooms.leave("a", "r2")  # leaving twice is harmless
    rooms.leave("nobody", "r1")
    assert rooms.rooms_of("a") == {"a", "r1"}


def test_rooms_of_is_a_copy() -> None:
    rooms = make("a")
    rooms.rooms_of("a").add("hacked")
    assert rooms.rooms_of("a") == {"a"}


def test_remove_leaves_every_room() -> None:
    rooms = make("a", "b")
    rooms.join("a", "r")
    rooms.join("b", "r")
    assert rooms.remove("a") == "sock-a"
    assert rooms.remove("a") is None
    assert list(rooms.members("r")) == ["b"]
    assert rooms.members("a") == {}
    assert rooms.rooms_of("a") == set()
    rooms.remove("b")
    assert rooms.all_rooms() == [] and len(rooms) == 0


def test_select() -> None:
    rooms = make("a", "b", "c", "d")
    rooms.join("a", "red")
    rooms.join("b", "red")
    rooms.join("b", "blue")
    rooms.join("c", "blue")
    assert list(rooms.select(())) == ["sock-a", "sock-b", "sock-c", "sock-d"]  # everyone, in join order
    assert list(rooms.select(["red"])) == ["sock-a", "sock-b"]
    # a member in several target rooms is yielded once
    assert list(rooms.select(["red", "blue"])) == ["sock-a", "sock-b", "sock-c"]
    assert list(rooms.select((), exclude=["a"])) == ["sock-b", "sock-c", "sock-d"]  # broadcast
    assert list(rooms.select(["red"], exclude=["a"])) == ["sock-b"]  # socket.to(room)
    assert list(rooms.select(["red", "blue"], exclude=["blue"])) == ["sock-a"]
    assert list(rooms.select(["nope"])) == []
    assert list(rooms.select(["b"])) == ["sock-b"]  # a sid is a room
