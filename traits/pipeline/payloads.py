"""Payloads: identify and group calls, with deterministic messageIds (PROTOCOL.md).

The canonical trait JSON from the diff is spliced into the call as it is, so building a
call is a few string joins, not a parse and re-serialize.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from json.encoder import encode_basestring  # the C encoder json.dumps(..., ensure_ascii=False) uses
from typing import TYPE_CHECKING, Any, Literal

from traits import __version__
from traits.destinations.base import Call, Change
from traits.pipeline.exits import ExitPolicy

if TYPE_CHECKING:
    from traits.config.models import OnExitRules

#: the namespace of every messageId sql-traits makes (UUIDv5)
MESSAGE_NAMESPACE = uuid.UUID("6f1c2a4e-7b0d-5e3a-9c41-2d8f0b7a6e15")
#: a UUIDv5 from the first 128 bits of its SHA-1: the bits kept, and the version (5) and variant (10) bits set
UUID_KEEP = ((1 << 128) - 1) ^ (0xF << 76) ^ (0x3 << 62)
UUID_SET = (0x5 << 76) | (0x2 << 62)
#: prefix of the anonymousId an account call carries when the query returned no user_id
GROUP_ANONYMOUS_PREFIX = "group:"


def message_id(destination: str, trait: str, call_type: str, key: str, run_id: str) -> str:
    name = "\x1f".join((destination, trait, call_type, key, run_id))
    return str(uuid.uuid5(MESSAGE_NAMESPACE, name))


class MessageIds:
    """``message_id`` for many keys of one (destination, trait, type, run), several times faster.

    The same UUIDv5 (SHA-1 of namespace + name, version and variant bits set), computed from a
    hash state primed with the parts every key shares instead of through ``uuid.UUID`` objects:
    messageIds are made once per call, and at a million calls ``uuid.uuid5`` was the slowest
    step of delivery.
    """

    def __init__(self, destination: str, trait: str, call_type: str, run_id: str) -> None:
        self._prefix = hashlib.sha1(MESSAGE_NAMESPACE.bytes + f"{destination}\x1f{trait}\x1f{call_type}\x1f".encode(), usedforsecurity=False)
        self._suffix = f"\x1f{run_id}"

    def __call__(self, key: str) -> str:
        h = self._prefix.copy()
        h.update((key + self._suffix).encode())
        d = bytearray(h.digest()[:16])
        d[6] = (d[6] & 0x0F) | 0x50  # version 5
        d[8] = (d[8] & 0x3F) | 0x80  # RFC 4122 variant
        x = d.hex()
        return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class CallBuilder:
    """Makes the calls of one (trait, destination, run)."""

    def __init__(
        self,
        *,
        trait: str,
        kind: Literal["user", "account"],
        destination: str,
        run_id: str,
        timestamp: str,
        send: Literal["row", "changed"],
        on_exit: Literal["clear", "keep"] | OnExitRules | ExitPolicy,
        full_resync: bool = False,
    ) -> None:
        self.trait = trait
        self.destination = destination
        self.run_id = run_id
        self.call_type = "identify" if kind == "user" else "group"
        self.send_changed_only = send == "changed" and not full_resync
        self.exits = ExitPolicy.of(on_exit)
        self._prefix = f'{{"type":"{self.call_type}",'.encode()
        self._message_id = MessageIds(destination, trait, self.call_type, run_id)
        self._stamp = json.dumps(timestamp)
        self._context = {
            change: json.dumps(
                {
                    "library": {"name": "sql-traits", "version": __version__},
                    "traits_engine": {"trait": trait, "run_id": run_id, "change": change},
                },
                separators=(",", ":"),
            )
            for change in ("added", "changed", "exited")
        }

    def build(self, key: str, change: Change, values_json: str | None, user_id: str | None, old_values_json: str | None) -> Call | None:
        """The call for one changed row, or None when nothing is to be sent for it."""
        if change == "exited":
            exit_traits = self.exits.traits(old_values_json)
            if exit_traits is None:  # every column kept: nothing to send
                return None
            traits = exit_traits
        elif self.send_changed_only and change == "changed" and old_values_json is not None and values_json is not None:
            traits = _changed_only(values_json, old_values_json)
        else:
            traits = values_json or "{}"
        mid = self._message_id(key)
        ids = self._ids(key, user_id)
        body = (
            f'{ids},"traits":{traits},"messageId":"{mid}","timestamp":{self._stamp},"context":{self._context[change]}}}'
        ).encode()
        return Call(key=key, change=change, message_id=mid, body=self._prefix + body)

    def select_sql(self, changes: str, *, lines: bool = False) -> str:
        """A DuckDB query over the change file ``changes`` (a relation: ``snapshot_format.source``) that
        makes, in the engine, the messageId and body of every call whose traits it can make (added
        rows, changed rows when the whole row is sent, and exits), byte for byte what ``build`` makes.

        Columns: id, change, row_hash, values_json, user_id, old_values_json, mid, body; mid and body are NULL for the rows
        ``build`` must make (``send: changed``) and for exits that send no call. At a million
        calls, building each one in Python was most of delivery's time; here it is a vectorized
        pass over the file.

        With ``lines`` the last column is the body as text followed by a newline (a JSON Lines
        line), and a ninth, ``key_json``, is the id as a JSON string followed by a newline: a
        chunk of either, back to back, is what a file appends and an ack log records.

        values_json, user_id and old_values_json are NULL in the rows whose call the engine made:
        the body holds them.
        """
        namespace = MESSAGE_NAMESPACE.bytes.hex()
        name = f"{_lit(self.destination)} || chr(31) || {_lit(self.trait)} || chr(31) || {_lit(self.call_type)} || chr(31)"
        x = f"sha1(unhex('{namespace}') || encode(concat({name}, id, chr(31), {_lit(self.run_id)})))"
        # UUIDv5: the digest's first 128 bits with the version nibble set to 5 and the variant's
        # two bits to 10, printed by the engine's UUID type (slicing the hex text into its five
        # groups with substr took a third again as long as the SHA-1 itself)
        mid = f"cast(cast((('0x' || left(x, 32))::UHUGEINT & {UUID_KEEP}::UHUGEINT) | {UUID_SET}::UHUGEINT as UUID) as VARCHAR)"
        if self.call_type == "identify":
            ids = "'\"userId\":', id_json"  # parts of the body's one concat()
        else:
            ids = (
                "case when user_id is not null and user_id <> '' "
                "then concat('\"groupId\":', id_json, ',\"userId\":', to_json(user_id)::VARCHAR) "
                "else concat('\"groupId\":', id_json, ',\"anonymousId\":', "
                f"to_json(concat({_lit(GROUP_ANONYMOUS_PREFIX)}, id))::VARCHAR) end"
            )
        context = (
            f"case change when 'added' then {_lit(self._context['added'])} when 'exited' then {_lit(self._context['exited'])} "
            f"else {_lit(self._context['changed'])} end"
        )
        # a JSON Lines line is the body and its newline made by the same concat(): one copy of
        # the text fewer than wrapping the body in another concat()
        end = "}\n" if lines else "}"
        body = (
            f"concat({_lit(self._prefix.decode())}, {ids}, ',\"traits\":', t, ',\"messageId\":\"', mid, "
            f"'\",\"timestamp\":', {_lit(self._stamp)}, ',\"context\":', {context}, {_lit(end)})"
        )
        whole_row = "change = 'added' or change = 'changed'"
        if self.send_changed_only:
            whole_row = "change = 'added' or (change = 'changed' and (old_values_json is null or values_json is null))"
        traits = f"case when change = 'exited' then {self.exits.traits_sql('old_values_json')} when {whole_row} then coalesce(values_json, '{{}}') end"
        made = f"{body} end as line, concat(id_json, chr(10)) as key_json" if lines else f"encode({body}) end as body"
        # a made call's body carries its row's values: the values themselves leave the engine
        # only for the rows Python builds (the values alone are a third again of a chunk's lines)
        values = ("case when t is null then values_json end as values_json, case when t is null then user_id end as user_id, "
                  "case when t is null then old_values_json end as old_values_json")
        return f"""
            with r as (select id::VARCHAR as id, change, row_hash, values_json, user_id::VARCHAR as user_id, old_values_json, {x} as x,
                              to_json(id::VARCHAR)::VARCHAR as id_json
                       from {changes}),
                 m as (select *, {mid} as mid, {traits} as t from r)
            select id, change, row_hash, {values},
                   case when t is not null then mid end as mid,
                   case when t is not null then {made}
            from m"""

    def _ids(self, key: str, user_id: str | None) -> str:
        if self.call_type == "identify":
            return f'"userId":{encode_basestring(key)}'
        if user_id:
            return f'"groupId":{encode_basestring(key)},"userId":{encode_basestring(user_id)}'
        anonymous = GROUP_ANONYMOUS_PREFIX + key
        return f'"groupId":{encode_basestring(key)},"anonymousId":{encode_basestring(anonymous)}'


def _changed_only(values_json: str, old_values_json: str) -> str:
    new: dict[str, Any] = json.loads(values_json)
    old: dict[str, Any] = json.loads(old_values_json)
    missing = object()
    diff = {k: val for k, val in new.items() if not _same(old.get(k, missing), val)}
    if not diff:  # only the account's user id changed: send the whole row
        return values_json
    return json.dumps(diff, separators=(",", ":"), ensure_ascii=False)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
