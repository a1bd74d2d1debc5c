//! The admission gate of flash sales: in memory, per sale open now, the
//! units not yet taken and each buyer's units, so that of a thousand
//! buyers at once only as many as there are units go on to the money
//! writer; the others hear `409 sold_out` (or `limit_reached`) at once,
//! without a write.
//!
//! The database stays the judge: an order the gate lets through still
//! takes its units by the conditional updates of
//! [`super::orders`]; the gate only refuses what cannot succeed given the
//! units taken and the ones reserved by orders in flight (a reservation is
//! a hold of a few milliseconds, like a pending order's ten minutes).
//!
//! Exact by bookkeeping, never by guessing:
//! - `free` is the sale's `remaining` less the units reserved by the
//!   orders in flight; every order through the gate holds a [`Ticket`]
//!   and settles it once its transaction committed (or failed) with what
//!   it really took, so a failed order (`402`, a replay) gives its units
//!   back; an order taken without a ticket (a sale not named, or the last
//!   second of a sale) is counted once it committed ([`Gates::taken`]);
//!   units an expired or refunded order returns come back
//!   ([`Gates::returned`]) after their commit;
//! - gates are made with their sale (before it can sell: it counts down
//!   first) and at start-up from the database, before any request;
//! - a refusal is not a stored answer: a key that made an order before
//!   gets that order (the caller reads the stored answer before refusing),
//!   and a retry under a key still in flight goes on to the writer, which
//!   replays it once the first is done.
//!
//! Outside the sale's open window (before `starts_at`, in its last second,
//! after `ends_at`) or for a request that does not match the sale, the gate
//! stands aside and the database answers (`sale_not_started`, ...).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use onair_signaling::ApiError;

use super::conflict;

/// The sale's last second is left to the database: the writer's batch
/// time may be later than the clock read here.
const END_MARGIN_MS: i64 = 1_000;

/// What a gate is made from (a sale as stored).
#[derive(Debug, Clone)]
pub struct SaleGate {
    /// The sale.
    pub id: i64,
    /// Its stream.
    pub stream_id: i64,
    /// Its product.
    pub product_id: i64,
    /// When buying opens.
    pub starts_at: i64,
    /// When it closes.
    pub ends_at: i64,
    /// Most units per buyer.
    pub per_buyer_limit: i64,
    /// Units not taken (the stored `remaining`).
    pub remaining: i64,
    /// Units each buyer holds (`flash_sale_buyers`).
    pub buyers: Vec<(i64, i64)>,
}

#[derive(Debug)]
struct Gate {
    stream_id: i64,
    product_id: i64,
    starts_at: i64,
    ends_at: i64,
    per_buyer_limit: i64,
    /// `remaining` less the units reserved by tickets in flight.
    free: i64,
    /// Units per buyer: taken, plus reserved by their tickets in flight.
    buyers: HashMap<i64, i64>,
    /// Tickets in flight by (buyer, key).
    in_flight: HashMap<(i64, String), u32>,
}

/// A gate's figures (for tests and the checks of a restart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateView {
    /// Units neither taken nor reserved.
    pub free: i64,
    /// Units per buyer (taken and reserved), buyers with none left out.
    pub buyers: Vec<(i64, i64)>,
    /// Tickets in flight.
    pub in_flight: u32,
}

/// What the gate says to an order naming a sale.
#[derive(Debug)]
pub enum Admission {
    /// No gate applies: the database alone answers.
    Open,
    /// Go on to the writer holding this ticket (settle it with what was taken).
    Ticket(Ticket),
    /// Refused, unless the key has a stored answer (the caller reads it).
    Refused(ApiError),
}

/// The open gates, by sale.
#[derive(Debug, Default)]
pub struct Gates {
    sales: DashMap<i64, Arc<Mutex<Gate>>>,
}

fn lock(g: &Mutex<Gate>) -> MutexGuard<'_, Gate> {
    g.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gate {
    fn add_units(&mut self, buyer: i64, units: i64) {
        let n = self.buyers.entry(buyer).or_default();
        *n += units;
        if *n <= 0 {
            self.buyers.remove(&buyer);
        }
    }
}

impl Gates {
    /// A gate for a sale (a new one, or one read at start-up).
    pub fn insert(&self, s: SaleGate) {
        let mut buyers = HashMap::with_capacity(s.buyers.len());
        for (b, units) in s.buyers.into_iter().filter(|(_, u)| *u > 0) {
            buyers.insert(b, units);
        }
        let g = Gate {
            stream_id: s.stream_id,
            product_id: s.product_id,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            per_buyer_limit: s.per_buyer_limit,
            free: s.remaining,
            buyers,
            in_flight: HashMap::new(),
        };
        self.sales.insert(s.id, Arc::new(Mutex::new(g)));
    }

    /// The sale's times changed in the database (tests move them).
    pub fn times(&self, sale: i64, starts_at: i64, ends_at: i64) {
        if let Some(g) = self.sales.get(&sale) {
            let mut g = lock(&g);
            g.starts_at = starts_at;
            g.ends_at = ends_at;
        }
    }

    /// Forgets the gates of a product (taken off a shelf, or deleted): the
    /// database answers for it from now on.
    pub fn forget_product(&self, stream: Option<i64>, product: i64) {
        self.sales.retain(|_, g| {
            let g = lock(g);
            !(g.product_id == product && stream.is_none_or(|s| s == g.stream_id))
        });
    }

    /// Forgets the gates of sales over before `before`.
    pub fn forget_ended(&self, before: i64) {
        self.sales.retain(|_, g| lock(g).ends_at >= before);
    }

    /// The gate's figures, if the sale has one.
    pub fn view(&self, sale: i64) -> Option<GateView> {
        let g = self.sales.get(&sale)?;
        let g = lock(&g);
        let mut buyers: Vec<(i64, i64)> = g.buyers.iter().map(|(b, u)| (*b, *u)).collect();
        buyers.sort_unstable();
        Some(GateView { free: g.free, buyers, in_flight: g.in_flight.values().sum() })
    }

    /// An order of `quantity` units by `buyer` under `key`, naming `sale`,
    /// at `now`. The refusals follow the database's order of checks.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(&self, sale: i64, stream: i64, product: i64, buyer: i64, key: &str, quantity: i64, now: i64) -> Admission {
        let Some(gate) = self.sales.get(&sale).map(|g| g.clone()) else { return Admission::Open };
        let mut g = lock(&gate);
        if g.stream_id != stream || g.product_id != product || now < g.starts_at || now >= g.ends_at - END_MARGIN_MS {
            return Admission::Open;
        }
        let mine = g.buyers.get(&buyer).copied().unwrap_or(0);
        let refusal = if g.free <= 0 {
            Some(conflict("sold_out", format!("flash sale {sale} is sold out")))
        } else if quantity > g.per_buyer_limit {
            Some(conflict("limit_reached", format!("at most {} per buyer in this sale", g.per_buyer_limit)))
        } else if g.free < quantity {
            Some(conflict("sold_out", "sold out"))
        } else if mine + quantity > g.per_buyer_limit {
            Some(conflict("limit_reached", format!("at most {} per buyer in this sale", g.per_buyer_limit)))
        } else {
            None
        };
        let id = (buyer, key.to_owned());
        let reserved = match refusal {
            // A retry of a request in flight: the writer replays the first's answer.
            Some(_) if g.in_flight.contains_key(&id) => 0,
            Some(e) => return Admission::Refused(e),
            None => quantity,
        };
        g.free -= reserved;
        g.add_units(buyer, reserved);
        *g.in_flight.entry(id.clone()).or_default() += 1;
        drop(g);
        Admission::Ticket(Ticket { gate, sale, buyer, key: id.1, reserved, settled: false })
    }

    /// An order without a ticket took `units` of the sale (committed).
    pub fn taken(&self, sale: i64, buyer: i64, units: i64) {
        if let Some(g) = self.sales.get(&sale) {
            let mut g = lock(&g);
            g.free -= units;
            g.add_units(buyer, units);
        }
    }

    /// An order gave back (committed) `buyer_units` of the buyer's units
    /// and `sale_units` to the sale's remaining quantity.
    pub fn returned(&self, sale: i64, buyer: i64, buyer_units: i64, sale_units: i64) {
        if let Some(g) = self.sales.get(&sale) {
            let mut g = lock(&g);
            g.free += sale_units;
            g.add_units(buyer, -buyer_units);
        }
    }
}

/// An order let through the gate: what it reserved, until it settles.
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<Mutex<Gate>>,
    /// The sale.
    pub sale: i64,
    buyer: i64,
    key: String,
    reserved: i64,
    settled: bool,
}

impl Ticket {
    /// The order's transaction is over: it took `taken` units of the sale
    /// (0 if it was refused, replayed or failed). The reservation becomes
    /// what was taken.
    pub fn settle(mut self, taken: i64) {
        self.finish(taken);
    }

    fn finish(&mut self, taken: i64) {
        if self.settled {
            return;
        }
        self.settled = true;
        let mut g = lock(&self.gate);
        g.free += self.reserved - taken;
        g.add_units(self.buyer, taken - self.reserved);
        let id = (self.buyer, std::mem::take(&mut self.key));
        if let Some(n) = g.in_flight.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                g.in_flight.remove(&id);
            }
        }
    }
}

impl Drop for Ticket {
    /// A ticket dropped unsettled (a panic on the way) took nothing: the
    /// order's task settles every outcome of the writer itself.
    fn drop(&mut self) {
        self.finish(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gates(remaining: i64, limit: i64) -> Gates {
        let g = Gates::default();
        g.insert(SaleGate { id: 1, stream_id: 10, product_id: 20, starts_at: 1_000, ends_at: 100_000, per_buyer_limit: limit, remaining, buyers: vec![] });
        g
    }

    fn ticket(a: Admission) -> Ticket {
        match a {
            Admission::Ticket(t) => t,
            other => panic!("{other:?}"),
        }
    }

    fn refused(a: Admission) -> String {
        match a {
            Admission::Refused(e) => e.code.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reserves_then_refuses_and_failures_give_back() {
        let g = gates(2, 1);
        assert!(matches!(g.admit(1, 10, 20, 7, "k", 1, 500), Admission::Open), "before the start the database answers");
        assert!(matches!(g.admit(1, 11, 20, 7, "k", 1, 5_000), Admission::Open), "another stream: the database answers");
        let a = ticket(g.admit(1, 10, 20, 7, "a", 1, 5_000));
        let b = ticket(g.admit(1, 10, 20, 8, "b", 1, 5_000));
        assert_eq!(refused(g.admit(1, 10, 20, 9, "c", 1, 5_000)), "sold_out");
        assert_eq!(refused(g.admit(1, 10, 20, 7, "a2", 1, 5_000)), "sold_out", "sold out is said before the buyer's limit");
        // A retry under a key in flight goes on (no reservation).
        let a_again = ticket(g.admit(1, 10, 20, 7, "a", 1, 5_000));
        assert_eq!(g.view(1).unwrap().in_flight, 3);
        a.settle(1);
        a_again.settle(0);
        b.settle(0); // refused by the database (402): its unit comes back
        assert_eq!(g.view(1).unwrap(), GateView { free: 1, buyers: vec![(7, 1)], in_flight: 0 });
        assert_eq!(refused(g.admit(1, 10, 20, 7, "a3", 1, 5_000)), "limit_reached");
        assert_eq!(refused(g.admit(1, 10, 20, 9, "c", 2, 5_000)), "limit_reached");
        drop(ticket(g.admit(1, 10, 20, 9, "c", 1, 5_000)));
        assert_eq!(g.view(1).unwrap().free, 1, "a ticket dropped unsettled took nothing");
        // An expired order returns the buyer's unit and the sale's.
        g.returned(1, 7, 1, 1);
        assert_eq!(g.view(1).unwrap(), GateView { free: 2, buyers: vec![], in_flight: 0 });
        g.taken(1, 9, 2);
        assert_eq!(refused(g.admit(1, 10, 20, 8, "d", 1, 5_000)), "sold_out");
        assert!(matches!(g.admit(1, 10, 20, 8, "d", 1, 99_500), Admission::Open), "the last second is the database's");
        g.forget_product(Some(10), 20);
        assert!(g.view(1).is_none());
    }
}
