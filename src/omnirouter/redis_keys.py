"""Every Redis key omnirouter writes, in one place, with the hash-tag choice next to it.

Redis Cluster runs a Lua script or MULTI only when all of its keys share one hash slot, and the
slot is chosen by the part of the key inside ``{…}``. Each group below names its tag and why.
Keys are prefixed by ``RedisSettings.key_prefix`` (default ``omni``) so several deployments, or
many tests, can share one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from omnirouter.events import DEFAULT_TENANT


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis SCAN/KEYS pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class IdentityKeys:
    """Identity resolution state of one tenant.

    Hash tag: ``{<prefix>:idn:<tenant>}`` — one slot per tenant. Resolving an event reads and
    writes identifiers of *several* customers at once (a merge), so per-customer tags would
    put one atomic step on many slots; the identity index of a tenant is one unit instead.
    Large deployments spread by tenant.
    """

    prefix: str
    tenant: str = DEFAULT_TENANT

    @property
    def tag(self) -> str:
        """The hash-tagged stem every identity key of this tenant starts with."""
        return f"{{{self.prefix}:idn:{self.tenant}}}"

    @property
    def identifier_owner(self) -> str:
        """HASH identifier address ("phone:+15550102345") -> customer_id that owns it."""
        return f"{self.tag}:owner"

    @property
    def identifier_joins(self) -> str:
        """HASH identifier address -> how many customers it has brought together (guardrail)."""
        return f"{self.tag}:joins"

    @property
    def alias(self) -> str:
        """HASH absorbed customer_id -> the customer that absorbed it (followed to the root)."""
        return f"{self.tag}:alias"

    @property
    def sequence(self) -> str:
        """STRING counter: the creation order of customers ("the oldest survives")."""
        return f"{self.tag}:seq"

    @property
    def processed(self) -> str:
        """Stem of HASHes ``<stem>:<time slice>`` event_id -> the resolution it produced.

        A replay inside the window gets the stored result back and changes nothing; each slice
        expires whole, so memory follows the window, not the traffic's history.
        """
        return f"{self.tag}:processed"

    @property
    def processed_buckets_match(self) -> str:
        """SCAN pattern of every time slice of :attr:`processed` (glob characters escaped)."""
        return f"{_glob_escape(self.processed)}:*"

    @property
    def processed_at(self) -> str:
        """Unused since processed ids moved to time slices; kept so script key order holds."""
        return f"{self.tag}:processed:at"

    @property
    def split_pairs(self) -> str:
        """SET of "a|b" customer pairs an operator split; they are never merged again silently."""
        return f"{self.tag}:split"

    @property
    def reviews(self) -> str:
        """HASH review_id -> merge-review item (JSON)."""
        return f"{self.tag}:reviews"

    @property
    def reviews_open(self) -> str:
        """ZSET review_id scored by creation time (ms): the open review queue."""
        return f"{self.tag}:reviews:open"

    @property
    def erasures(self) -> str:
        """SET of the event ids of erasures made here (ids only, as on the erasure topic): a
        replay skips the events of a person whose erasure this state already holds."""
        return f"{self.tag}:erasures"

    @property
    def customer_stem(self) -> str:
        """Stem of per-customer keys; the Lua scripts append the id and a suffix."""
        return f"{self.tag}:cus:"

    def customer(self, customer_id: str) -> str:
        """HASH seq, status, created_at_ms, merged_into of one customer."""
        return f"{self.customer_stem}{customer_id}"

    def customer_identifiers(self, customer_id: str) -> str:
        """SET of the identifier addresses a customer owns."""
        return f"{self.customer_stem}{customer_id}:ids"

    def customer_merges(self, customer_id: str) -> str:
        """LIST of merges into this customer, oldest first (JSON): the history unmerge follows."""
        return f"{self.customer_stem}{customer_id}:merges"

    def script_keys(self) -> list[str]:
        """The fixed keys passed to the identity Lua scripts, in the order they expect."""
        return [
            self.identifier_owner,
            self.identifier_joins,
            self.alias,
            self.sequence,
            self.processed,
            self.processed_at,
            self.split_pairs,
            self.reviews,
            self.reviews_open,
        ]


@dataclass(frozen=True, slots=True)
class CustomerCaseKeys:
    """Cases, timeline, profile and contacts of one customer.

    Hash tag: ``{<prefix>:cus:<tenant>:<customer_id>}`` — one slot per customer. Everything a
    customer's event changes lives here, so one Lua call updates it atomically, and customers
    spread evenly over a Redis Cluster. Folding a merged customer in touches two slots and is
    done in two idempotent steps (export from the absorbed, import into the survivor). Case ids
    end with their customer's id (see ``pipeline.cases.entries.new_case_id``), so a case is
    found from its id alone, with no tenant-wide index to keep in step.
    """

    prefix: str
    tenant: str
    customer_id: str

    @property
    def tag(self) -> str:
        """The hash-tagged stem of every key of this customer."""
        return f"{{{self.prefix}:cus:{self.tenant}:{self.customer_id}}}"

    @property
    def state(self) -> str:
        """HASH open_case, last_case, folded_into; after an erasure only ``erased`` (expiring)."""
        return f"{self.tag}:state"

    @property
    def cases(self) -> str:
        """HASH case_id -> case document (JSON), every case of the customer."""
        return f"{self.tag}:cases"

    @staticmethod
    def every_customers_cases(prefix: str) -> str:
        """SCAN pattern matching the ``cases`` hash of every customer of every tenant."""
        return f"{{{_glob_escape(prefix)}:cus:*}}:cases"

    @property
    def timeline(self) -> str:
        """LIST of timeline entries (JSON), oldest first, capped and expiring."""
        return f"{self.tag}:timeline"

    @property
    def seen(self) -> str:
        """ZSET event_id applied to this customer (replays change nothing), capped."""
        return f"{self.tag}:seen"

    @property
    def threads(self) -> str:
        """HASH e-mail Message-ID -> case_id, for threading replies."""
        return f"{self.tag}:threads"

    @property
    def profile(self) -> str:
        """HASH name, language, tier, attributes (JSON), identifiers (JSON)."""
        return f"{self.tag}:profile"

    @property
    def contacts(self) -> str:
        """ZSET contact event_id scored by time (ms), for the repeat-contact window."""
        return f"{self.tag}:contacts"

    @property
    def agents(self) -> str:
        """ZSET agent_id scored by when they last worked with the customer (ms)."""
        return f"{self.tag}:agents"

    @property
    def outcomes(self) -> str:
        """HASH event_id -> what applying it did (case, transitions), so a replay re-announces
        exactly the same case events; trimmed together with ``seen``."""
        return f"{self.tag}:outcomes"

    def script_keys(self) -> list[str]:
        """The keys passed to the case Lua scripts, in the order they expect."""
        return [
            self.state,
            self.cases,
            self.timeline,
            self.seen,
            self.threads,
            self.profile,
            self.contacts,
            self.agents,
            self.outcomes,
        ]


@dataclass(frozen=True, slots=True)
class RoutingKeys:
    """Agents, offers, assignments, queues and timers of one tenant.

    Hash tag: ``{<prefix>:rt:<tenant>}`` — one slot per tenant. Offering a case reads every
    candidate agent's presence and load and reserves one of them atomically, so agents and the
    cases racing for them must share a slot; routing state is small next to cases and
    timelines, which stay spread per customer.
    """

    prefix: str
    tenant: str

    @property
    def tag(self) -> str:
        """The hash-tagged stem of every routing key of this tenant."""
        return f"{{{self.prefix}:rt:{self.tenant}}}"

    @property
    def agents(self) -> str:
        """HASH agent_id -> agent (JSON: skills, languages, capacity, presence, idle_since)."""
        return f"{self.tag}:agents"

    @property
    def load(self) -> str:
        """HASH "agent|channel" -> cases of that channel the agent holds or is offered."""
        return f"{self.tag}:load"

    @property
    def offers(self) -> str:
        """HASH case_id -> open offer (JSON: agent, channel, expiry, queue)."""
        return f"{self.tag}:offers"

    @property
    def assigned(self) -> str:
        """HASH case_id -> assignment (JSON: agent, channel, since, queue); at most one each."""
        return f"{self.tag}:assigned"

    @property
    def waiting(self) -> str:
        """HASH case_id -> routing request (JSON) of a case queued or offered."""
        return f"{self.tag}:waiting"

    @property
    def timers(self) -> str:
        """ZSET "kind|case_id" scored by when it fires (ms): offer expiry, sticky, escalation,
        SLA, opening. In Redis, so they survive a worker restart."""
        return f"{self.tag}:timers"

    @property
    def acks(self) -> str:
        """SET "case_id|opened_ms": auto-acknowledgements already sent (one per episode)."""
        return f"{self.tag}:acks"

    @property
    def stats(self) -> str:
        """HASH queue -> handling-time average (JSON), for the estimated wait."""
        return f"{self.tag}:stats"

    @property
    def routed(self) -> str:
        """HASH case_id -> its latest routing decision (JSON: cause, state, agent, ack), so a
        cause redelivered after a crash is announced again as decided, not decided anew."""
        return f"{self.tag}:routed"

    @property
    def announced(self) -> str:
        """HASH case_id -> the cause whose decision Kafka has acknowledged: a redelivery of
        that cause has nothing left to announce."""
        return f"{self.tag}:announced"

    @property
    def queue_stem(self) -> str:
        """Stem of the per-queue ZSETs of waiting cases (priority first, then age)."""
        return f"{self.tag}:queue:"

    def queue(self, queue_id: str) -> str:
        """ZSET case_id -> score (lower first: higher priority, then longer wait)."""
        return f"{self.queue_stem}{queue_id}"

    def script_keys(self) -> list[str]:
        """The keys passed to the routing Lua scripts, in the order they expect."""
        return [
            self.agents,
            self.load,
            self.offers,
            self.assigned,
            self.waiting,
            self.timers,
            self.acks,
            self.stats,
            self.routed,
            self.announced,
        ]


def routing_tenants_key(prefix: str) -> str:
    """SET of tenants with routing state, so the timer loop knows whose timers to fire."""
    return f"{{{prefix}:rt}}:tenants"


def ingress_seen_key(prefix: str, provider: str, message_id: str) -> str:
    """STRING set once a provider's message was published: its retries are answered 200 and
    not published again. One key each, no hash tag (single-key commands only)."""
    return f"{prefix}:ingress:seen:{provider}:{message_id}"


@dataclass(frozen=True, slots=True)
class ChatKeys:
    """Web chat delivery between the dispatcher and the gateway holding the visitor's socket.

    Hash tag: ``{<prefix>:chat:<tenant>:<visitor_id>}`` — one slot per visitor.
    """

    prefix: str
    tenant: str
    visitor_id: str

    @property
    def tag(self) -> str:
        """The hash-tagged stem of the visitor's keys."""
        return f"{{{self.prefix}:chat:{self.tenant}:{self.visitor_id}}}"

    @property
    def channel(self) -> str:
        """Pub/sub channel: replies for a connected visitor (JSON messages)."""
        return f"{self.tag}:live"

    @property
    def pending(self) -> str:
        """LIST of replies published while no socket was open, delivered on reconnect."""
        return f"{self.tag}:pending"

    @property
    def profile(self) -> str:
        """HASH email, phone the visitor left in the widget; their later messages carry them.

        Expires some months after the last update (see ``channels.webchat.routes``).
        """
        return f"{self.tag}:profile"


def dispatch_claim_key(prefix: str, event_id: str) -> str:
    """STRING (JSON) claim and outcome of delivering one outbound event.

    ``sending`` (with a lease) while a dispatcher delivers it, then ``sent`` or ``failed`` for
    ``OutboundSettings.claim_ttl_s``: a redelivered event that finds ``sent`` is not sent to the
    customer again. One key each, no hash tag (single-key commands and scripts only).
    """
    return f"{prefix}:dispatch:{event_id}"


@dataclass(frozen=True, slots=True)
class DeskKeys:
    """Desktop accounts and sign-in sessions of one tenant.

    Hash tag: ``{<prefix>:desk:<tenant>}``. Small and read on every request: one slot is fine.
    """

    prefix: str
    tenant: str

    @property
    def tag(self) -> str:
        """The hash-tagged stem of the tenant's desktop keys."""
        return f"{{{self.prefix}:desk:{self.tenant}}}"

    @property
    def accounts(self) -> str:
        """HASH agent_id -> account (JSON: name, role, queues, password hash)."""
        return f"{self.tag}:accounts"

    def session(self, token_hash: str) -> str:
        """STRING (with TTL) the signed-in agent of a session, by the SHA-256 of its token."""
        return f"{self.tag}:session:{token_hash}"
