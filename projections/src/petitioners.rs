//! The petitioner history read model: one row per received petition, kept
//! from the global log by the [runner](crate::runner), to find repeat
//! petitions (the same person, or the same unit and facts, within a number
//! of days) and skipped-level visits (越级, 信访工作条例 Art 20).
//!
//! Petitioners' identities are personal data: a row holds only
//! [`petitioner_key`], an HMAC-SHA256 of the normalised name and contact
//! under the deployment's [`PetitionerSecret`], never the name. A plain hash
//! would not do: names are few and mainland mobile numbers are eleven
//! digits, so anyone holding the table could try them all; without the
//! secret a key says nothing (信访工作条例 Art 30 keeps a petitioner's
//! identity from those it does not concern). The facts are kept only as [`facts_hash`]. Both are exact
//! matches after [`normalise`]: they find a petition sent again, not one
//! retold in other words. Whether two petitions concern "the same facts"
//! stays the registrar's judgement (a new petition names the earlier one
//! in `repeat_of`); these queries only suggest candidates.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use hmac::{Hmac, Mac};
use mediation_domain::petition::{Petition, PetitionChange, PetitionEvent, Petitioner};
use mediation_domain::values::{DivisionCode, Level, Name, PetitionChannel, PetitionLevel, Text};
use mediation_store::{Batch, Cell, RecordedEvent, Row, Sql, Store, StoreError};
use sha2::{Digest, Sha256};

use crate::runner::Projection;
use crate::statistics::support::{millis, parse_level};

/// The projection's name, under which its checkpoint is kept.
pub const NAME: &str = "petitioner_history";

/// The longest window a repeat query looks back, in days (a century):
/// longer ones are cut to it, which keeps the date arithmetic in range.
pub const MAX_WINDOW_DAYS: u32 = 36_525;

/// The petitioner history as a projection, keying petitioners with its
/// secret.
#[derive(Debug, Clone)]
pub struct PetitionerHistory {
    secret: PetitionerSecret,
}

impl PetitionerHistory {
    /// The history, keying petitioners under `secret`.
    pub fn new(secret: PetitionerSecret) -> Self {
        Self { secret }
    }
}

/// The deployment's secret under which petitioners are keyed
/// ([`petitioner_key`]). Every process writing or querying one database's
/// petitioner history must hold the same secret; with another one, keys no
/// longer match and the history must be rebuilt (`mediation replay`).
/// Its `Debug` form does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct PetitionerSecret(std::sync::Arc<[u8]>);

/// The fixed secret of development setups, public in this source: keys made
/// with it are as reversible as plain hashes.
const DEVELOPMENT_SECRET: &[u8] = b"mediation development petitioner secret: not for real data";

impl PetitionerSecret {
    /// The fewest bytes a secret may have: 128 bits, beyond any search.
    pub const MIN_BYTES: usize = 16;

    /// A secret of `bytes` (at least [`Self::MIN_BYTES`]), as read from a
    /// file or the environment, surrounding white space removed.
    pub fn new(bytes: &[u8]) -> Result<Self, SecretTooShort> {
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < Self::MIN_BYTES {
            return Err(SecretTooShort { len: trimmed.len() });
        }
        Ok(Self(trimmed.into()))
    }

    /// The public development secret: for tests and for trying the engine
    /// on made-up data, never for real petitioners.
    pub fn development() -> Self {
        Self(DEVELOPMENT_SECRET.into())
    }

    /// Whether this is [`PetitionerSecret::development`].
    pub fn is_development(&self) -> bool {
        &*self.0 == DEVELOPMENT_SECRET
    }
}

impl std::fmt::Debug for PetitionerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_development() {
            f.write_str("PetitionerSecret(development)")
        } else {
            f.write_str("PetitionerSecret(..)")
        }
    }
}

/// A petitioner secret shorter than [`PetitionerSecret::MIN_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the petitioner secret has {len} bytes; it needs at least {} (e.g. 32 random bytes in hex)",
    PetitionerSecret::MIN_BYTES
)]
pub struct SecretTooShort {
    /// How many bytes it had, white space removed.
    pub len: usize,
}

#[async_trait::async_trait]
impl Projection for PetitionerHistory {
    fn name(&self) -> &'static str {
        NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["petitioner_history"]
    }

    fn gather(&self) -> std::time::Duration {
        crate::runner::DASHBOARD_GATHER
    }

    async fn apply(&self, batch: &mut Batch, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let mut received: BTreeMap<String, PetitionRecord> = BTreeMap::new();
        // Skipped-level flags on petitions received in an earlier batch: a
        // batch may end between the two events of one receipt.
        let mut flag_earlier: Vec<String> = Vec::new();
        for recorded in events.iter().filter(|e| e.aggregate_type == Petition::TYPE) {
            let event: PetitionEvent = recorded.decode().map_err(|e| {
                StoreError::Corrupt(format!(
                    "event {} of petition {} does not match this engine: {e}",
                    recorded.sequence, recorded.aggregate_id
                ))
            })?;
            let id = &recorded.aggregate_id;
            match event.change {
                PetitionChange::PetitionReceived {
                    channel,
                    petitioner,
                    complained_unit,
                    facts,
                    division,
                    competent_level,
                    visited_level,
                    repeat_of,
                    ..
                } => {
                    received.insert(
                        id.clone(),
                        PetitionRecord {
                            case_id: id.clone(),
                            petitioner_key: petitioner_key(&self.secret, &petitioner),
                            complained_unit: complained_unit.as_ref().map(normalise_unit),
                            facts_hash: facts_hash(&facts),
                            division,
                            received_at: millis(event.at),
                            channel,
                            competent_level,
                            visited_level,
                            skipped_level: false,
                            repeat_of: repeat_of.map(Into::into),
                        },
                    );
                }
                PetitionChange::SkippedLevelVisitRecorded { .. } => match received.get_mut(id) {
                    Some(record) => record.skipped_level = true,
                    None => flag_earlier.push(id.clone()),
                },
                // Nothing else changes the history.
                _ => {}
            }
        }
        write(batch, received.values(), &flag_earlier).await
    }
}

/// One received petition, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PetitionRecord {
    /// The case id.
    pub case_id: String,
    /// The petitioner's [`petitioner_key`].
    pub petitioner_key: String,
    /// The complained unit, [normalised](normalise_unit), if any.
    pub complained_unit: Option<String>,
    /// The [`facts_hash`] of the facts.
    pub facts_hash: String,
    /// The division the matter belongs to.
    pub division: DivisionCode,
    /// When it was received, to the millisecond.
    pub received_at: DateTime<Utc>,
    /// How it arrived.
    pub channel: PetitionChannel,
    /// The level competent to handle it.
    pub competent_level: Level,
    /// The level a visit went to, possibly above the district.
    pub visited_level: Option<PetitionLevel>,
    /// Whether the visit skipped a level (a `SkippedLevelVisitRecorded`
    /// event followed the receipt).
    pub skipped_level: bool,
    /// The earlier petition the registrar named as repeated, if any.
    pub repeat_of: Option<String>,
}

/// Why two petitions look like one repeating the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RepeatBasis {
    /// The same petitioner key.
    SamePetitioner,
    /// The same complained unit and the same facts hash.
    SameUnitAndFacts,
    /// Both.
    Both,
}

impl RepeatBasis {
    fn and(self, other: Self) -> Self {
        if self == other { self } else { Self::Both }
    }
}

/// A petition that repeats an earlier one within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeat {
    /// The earlier petition.
    pub earlier: String,
    /// When it was received.
    pub earlier_received_at: DateTime<Utc>,
    /// The later petition.
    pub later: String,
    /// When it was received.
    pub later_received_at: DateTime<Utc>,
    /// What they have in common.
    pub basis: RepeatBasis,
}

/// Normalises text for comparison: full-width letters and digits folded to
/// ASCII, lower case, and everything but letters and digits (white space,
/// punctuation, symbols) dropped, so that "Zhang San", "zhang  san" and
/// "ＺＨＡＮＧ·ＳＡＮ" agree.
pub fn normalise(text: &str) -> String {
    text.chars()
        .map(fold_width)
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect()
}

fn fold_width(c: char) -> char {
    match c {
        // The full-width forms of ASCII sit 0xFEE0 above it.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// A contact [normalised](normalise); a mainland mobile number written
/// with the country code (+86, 0086) is the same number without it.
fn normalise_contact(contact: &str) -> String {
    let n = normalise(contact);
    if n.bytes().all(|b| b.is_ascii_digit()) {
        let national = n.strip_prefix("0086").or_else(|| n.strip_prefix("86"));
        if let Some(national) = national.filter(|m| m.len() == 11 && m.starts_with('1')) {
            return national.to_owned();
        }
    }
    n
}

/// The petitioner's key: the HMAC-SHA256 under `secret`, in hex, of the
/// normalised name and contact. Petitioners who gave no contact share a key
/// with everyone of the same name who gave none.
pub fn petitioner_key(secret: &PetitionerSecret, petitioner: &Petitioner) -> String {
    let contact = petitioner
        .contact
        .as_ref()
        .map(|c| normalise_contact(c.as_str()))
        .unwrap_or_default();
    keyed(
        secret,
        &["petitioner", &normalise(petitioner.name.as_str()), &contact],
    )
}

/// A dispute party's key: the HMAC-SHA256 under `secret`, in hex, of the
/// normalised name, under another label than [`petitioner_key`]'s, so
/// that a party and a petitioner of the same name do not share a key.
/// The export's pseudonym for a party (`mediation export`).
pub fn party_key(secret: &PetitionerSecret, name: &str) -> String {
    keyed(secret, &["party", &normalise(name)])
}

fn keyed(secret: &PetitionerSecret, parts: &[&str]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&secret.0)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    for part in parts {
        // The same separator as the plain hashes below.
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    hex(&mac.finalize().into_bytes())
}

/// The facts' hash: the SHA-256, in hex, of the normalised facts.
pub fn facts_hash(facts: &Text) -> String {
    sha256_hex(&["facts", &normalise(facts.as_str())])
}

/// A complained unit as the history keeps it: [normalised](normalise).
pub fn normalise_unit(unit: &Name) -> String {
    normalise(unit.as_str())
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // A separator that normalised text cannot contain, so that the
        // parts cannot run into each other.
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn bounded_window(days: u32) -> u32 {
    days.min(MAX_WINDOW_DAYS)
}

/// The petitions received in `received` (from inclusive, to exclusive) in
/// `subtree` that repeat an earlier petition in `subtree` received at most
/// `window_days` days (of 24 hours) before them: the same petitioner key,
/// or the same complained unit and facts hash. A petition repeating several
/// earlier ones appears once for each. Ordered by the later petition's
/// receipt, then the earlier's. With `newest`, only that many, the latest
/// received (a board's list): the cost then follows them, not the
/// history.
pub async fn repeats(
    store: &Store,
    subtree: &DivisionCode,
    received: Range<DateTime<Utc>>,
    window_days: u32,
    newest: Option<u32>,
) -> Result<Vec<Repeat>, StoreError> {
    let mut found: BTreeMap<(DateTime<Utc>, String, DateTime<Utc>, String), Repeat> =
        BTreeMap::new();
    for (basis, matching) in [
        (
            RepeatBasis::SamePetitioner,
            "e.petitioner_key = l.petitioner_key",
        ),
        (
            RepeatBasis::SameUnitAndFacts,
            "e.complained_unit = l.complained_unit AND e.facts_hash = l.facts_hash",
        ),
    ] {
        let by = repeats_by(store, subtree, &received, window_days, matching, newest).await?;
        for repeat in by.into_iter().map(|r| Repeat { basis, ..r }) {
            let key = (
                repeat.later_received_at,
                repeat.later.clone(),
                repeat.earlier_received_at,
                repeat.earlier.clone(),
            );
            found
                .entry(key)
                .and_modify(|r| r.basis = r.basis.and(basis))
                .or_insert(repeat);
        }
    }
    let mut found: Vec<Repeat> = found.into_values().collect();
    if let Some(n) = newest {
        let keep = usize::try_from(n).unwrap_or(usize::MAX);
        found.drain(..found.len().saturating_sub(keep));
    }
    Ok(found)
}

async fn repeats_by(
    store: &Store,
    subtree: &DivisionCode,
    received: &Range<DateTime<Utc>>,
    window_days: u32,
    matching: &str,
    newest: Option<u32>,
) -> Result<Vec<Repeat>, StoreError> {
    let Some(n) = newest else {
        return pairs(store, subtree, received, window_days, matching, None).await;
    };
    // The newest `n` pairs, found from the newest repeating petitions down,
    // a page of them at a time: every pair of a page sorts after every pair
    // of the next, so the search stops at the first page that brings the
    // count to `n`, and its cost follows the answer, not every repeating
    // pair in scope (which a sort of all of them would pay).
    let (low, high) = subtree.subtree_bounds();
    // No more repeating petitions per page than pairs wanted: each has at
    // least one pair, unless its earlier petitions lie out of the window
    // or the subtree.
    let page = n.clamp(1, REPEAT_PAGE);
    let mut found = Vec::new();
    let mut cursor: Option<(DateTime<Utc>, String)> = None;
    loop {
        let sql = Sql::new(
            "SELECT case_id, received_at FROM petitioner_history \
             WHERE repeats AND division BETWEEN $1 AND $2 \
             AND received_at >= $3 AND received_at < $4 \
             AND (CAST($5 AS TEXT) IS NULL OR received_at < $6 \
                  OR (received_at = $6 AND case_id < $5)) \
             ORDER BY received_at DESC, case_id DESC LIMIT $7",
        )
        .bind(&low)
        .bind(&high)
        .bind(received.start)
        .bind(received.end)
        .bind(cursor.as_ref().map(|c| c.1.as_str()))
        .bind(cursor.as_ref().map_or(received.end, |c| c.0))
        .bind(i64::from(page));
        let later: Vec<(String, DateTime<Utc>)> = store
            .fetch_all(&sql)
            .await?
            .iter()
            .map(|row| Ok((row.get("case_id")?, row.time("received_at")?)))
            .collect::<Result<_, StoreError>>()?;
        let Some(last) = later.last() else { break };
        cursor = Some((last.1, last.0.clone()));
        let ids: Vec<String> = later.iter().map(|(id, _)| id.clone()).collect();
        let of_page = pairs(
            store,
            subtree,
            received,
            window_days,
            matching,
            Some((&ids, n)),
        );
        found.extend(of_page.await?);
        if found.len() >= usize::try_from(n).unwrap_or(usize::MAX)
            || later.len() < usize::try_from(page).unwrap_or(usize::MAX)
        {
            break;
        }
    }
    Ok(found)
}

/// How many repeating petitions [`repeats_by`] looks at per round, at
/// most.
const REPEAT_PAGE: u32 = 16;

/// The pairs (later petition, earlier one it repeats) in `subtree` whose
/// later petition was received in `received`, matched by `matching`; with
/// `newest_among`, only those whose later petition is one of the ids
/// given, and the newest so many of them.
async fn pairs(
    store: &Store,
    subtree: &DivisionCode,
    received: &Range<DateTime<Utc>>,
    window_days: u32,
    matching: &str,
    newest_among: Option<(&[String], u32)>,
) -> Result<Vec<Repeat>, StoreError> {
    let (low, high) = subtree.subtree_bounds();
    let days = bounded_window(window_days);
    let select = "SELECT e.case_id AS earlier, e.received_at AS earlier_at, \
                  l.case_id AS later, l.received_at AS later_at \
                  FROM petitioner_history l JOIN petitioner_history e";
    // Petitions received in the same millisecond are ordered by case id.
    let before = "(e.received_at < l.received_at \
                  OR (e.received_at = l.received_at AND e.case_id < l.case_id))";
    let dialect = store.dialect();
    let earliest = dialect.pick(
        // In hours, so that a day is 24 hours whatever the session's time
        // zone (PostgreSQL adds days in local time).
        "l.received_at - make_interval(hours => CAST($5 AS INTEGER))",
        // Instants are text in one fixed form, which strftime also writes,
        // so they compare as text.
        "strftime('%Y-%m-%dT%H:%M:%fZ', l.received_at, '-' || $5 || ' hours')",
    );
    // Only petitions marked as repeating some earlier one are looked at,
    // through a partial index, so the cost follows the repeats, not the
    // petitions.
    let among = newest_among.map_or_else(String::new, |_| {
        format!(
            " AND {} ORDER BY l.received_at DESC, l.case_id DESC, \
             e.received_at DESC, e.case_id DESC LIMIT $7",
            dialect.any("l.case_id", 6)
        )
    });
    let mut sql = Sql::new(format!(
        "{select} ON {matching} AND {before} AND e.received_at >= {earliest} \
         AND e.division BETWEEN $1 AND $2 \
         WHERE l.repeats AND l.division BETWEEN $1 AND $2 \
         AND l.received_at >= $3 AND l.received_at < $4{among}"
    ))
    .bind(&low)
    .bind(&high)
    .bind(received.start)
    .bind(received.end)
    .bind(i64::from(days) * 24);
    if let Some((later, n)) = newest_among {
        sql = sql.bind(later).bind(i64::from(n));
    }
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(|row| {
            Ok(Repeat {
                earlier: row.get("earlier")?,
                earlier_received_at: row.time("earlier_at")?,
                later: row.get("later")?,
                later_received_at: row.time("later_at")?,
                basis: RepeatBasis::SamePetitioner,
            })
        })
        .collect()
}

/// The petitions in `subtree` that a new petition (from `petitioner`,
/// about `complained_unit`, on `facts`) would repeat: received at most
/// `window_days` days before `at`, and not after it, with the same
/// petitioner key, or the same unit and facts hash. For the registrar
/// deciding `repeat_of`. Newest first, at most `limit`: the cost follows
/// the answer, not the petitioner's whole history.
#[allow(clippy::too_many_arguments)]
pub async fn candidates(
    store: &Store,
    secret: &PetitionerSecret,
    subtree: &DivisionCode,
    petitioner: &Petitioner,
    complained_unit: Option<&Name>,
    facts: &Text,
    at: DateTime<Utc>,
    window_days: u32,
    limit: u32,
) -> Result<Vec<(PetitionRecord, RepeatBasis)>, StoreError> {
    let key = petitioner_key(secret, petitioner);
    let unit = complained_unit.map(normalise_unit);
    let facts = facts_hash(facts);
    let since = at
        .checked_sub_signed(chrono::TimeDelta::days(i64::from(bounded_window(
            window_days,
        ))))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let (low, high) = subtree.subtree_bounds();
    // Each kind of match read newest first through its own index, at most
    // `limit` of each, rather than every match of a long history.
    let within = "division BETWEEN $1 AND $2 AND received_at >= $3 AND received_at <= $4";
    let newest = "ORDER BY received_at DESC, case_id DESC LIMIT $8";
    let sql = Sql::new(format!(
        "SELECT {RECORD} FROM ( \
           SELECT {RECORD} FROM (SELECT {RECORD} FROM petitioner_history \
             WHERE petitioner_key = $5 AND {within} {newest}) AS same_person \
           UNION \
           SELECT {RECORD} FROM (SELECT {RECORD} FROM petitioner_history \
             WHERE complained_unit = $6 AND facts_hash = $7 AND {within} {newest}) AS same_facts \
         ) AS found {newest}"
    ))
    .bind(&low)
    .bind(&high)
    .bind(since)
    .bind(at)
    .bind(&key)
    .bind(unit.as_deref())
    .bind(&facts)
    .bind(i64::from(limit));
    let records = store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(decode_record)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(records
        .into_iter()
        .map(|record| {
            let person = record.petitioner_key == key;
            let same_facts =
                unit.is_some() && record.complained_unit == unit && record.facts_hash == facts;
            let basis = match (person, same_facts) {
                (true, true) => RepeatBasis::Both,
                (true, false) => RepeatBasis::SamePetitioner,
                _ => RepeatBasis::SameUnitAndFacts,
            };
            (record, basis)
        })
        .collect())
}

/// The in-person visits received in `received` (from inclusive, to
/// exclusive) in `subtree` that skipped a level, oldest first.
pub async fn skipped_level_visits(
    store: &Store,
    subtree: &DivisionCode,
    received: Range<DateTime<Utc>>,
    newest: Option<u32>,
) -> Result<Vec<PetitionRecord>, StoreError> {
    let (low, high) = subtree.subtree_bounds();
    // `skipped_level` repeated in the filter lets the partial index serve.
    let mut sql = Sql::new(format!(
        "SELECT {RECORD} FROM (SELECT {RECORD} FROM petitioner_history WHERE skipped_level \
         AND division BETWEEN $1 AND $2 AND received_at >= $3 AND received_at < $4 \
         ORDER BY received_at DESC, case_id DESC{}) AS newest ORDER BY received_at, case_id",
        if newest.is_some() { " LIMIT $5" } else { "" }
    ))
    .bind(&low)
    .bind(&high)
    .bind(received.start)
    .bind(received.end);
    if let Some(n) = newest {
        sql = sql.bind(i64::from(n));
    }
    store
        .fetch_all(&sql)
        .await?
        .iter()
        .map(decode_record)
        .collect()
}

const RECORD: &str = "case_id, petitioner_key, complained_unit, facts_hash, division, \
    received_at, channel, competent_level, visited_level, skipped_level, repeat_of";

fn decode_record(row: &Row) -> Result<PetitionRecord, StoreError> {
    let division: String = row.get("division")?;
    let channel: String = row.get("channel")?;
    let competent: String = row.get("competent_level")?;
    let visited: Option<String> = row.get("visited_level")?;
    Ok(PetitionRecord {
        case_id: row.get("case_id")?,
        petitioner_key: row.get("petitioner_key")?,
        complained_unit: row.get("complained_unit")?,
        facts_hash: row.get("facts_hash")?,
        division: DivisionCode::parse(&division)
            .map_err(|e| StoreError::Corrupt(format!("petitioner history division: {e}")))?,
        received_at: row.time("received_at")?,
        channel: PetitionChannel::parse(&channel)
            .map_err(|e| StoreError::Corrupt(format!("petitioner history: {e}")))?,
        competent_level: parse_level(&competent)?,
        visited_level: visited
            .as_deref()
            .map(PetitionLevel::parse)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("petitioner history: {e}")))?,
        skipped_level: row.get("skipped_level")?,
        repeat_of: row.get("repeat_of")?,
    })
}

/// Inserts the received petitions and flags the earlier ones, within the
/// batch: one statement for each.
async fn write(
    batch: &mut Batch,
    received: impl Iterator<Item = &PetitionRecord>,
    flag_earlier: &[String],
) -> Result<(), StoreError> {
    let records: Vec<&PetitionRecord> = received.collect();
    let rows: Vec<Vec<Cell<'_>>> = records
        .iter()
        .map(|r| {
            vec![
                Cell::Text(&r.case_id),
                Cell::Text(&r.petitioner_key),
                Cell::OptionalText(r.complained_unit.as_deref()),
                Cell::Text(&r.facts_hash),
                Cell::Text(r.division.as_str()),
                Cell::Time(Some(r.received_at)),
                Cell::Text(r.channel.as_str()),
                Cell::Text(r.competent_level.as_str()),
                Cell::OptionalText(r.visited_level.map(PetitionLevel::as_str)),
                Cell::Bool(r.skipped_level),
                Cell::OptionalText(r.repeat_of.as_deref()),
            ]
        })
        .collect();
    let mut keys: Vec<String> = Vec::new();
    let mut facts: Vec<String> = Vec::new();
    for r in &records {
        keys.push(r.petitioner_key.clone());
        facts.push(r.facts_hash.clone());
    }
    keys.sort_unstable();
    keys.dedup();
    facts.sort_unstable();
    facts.dedup();
    let columns: Vec<&str> = RECORD.split(',').map(str::trim).collect();
    // A petition is received once; a row already there stays as it is.
    batch
        .insert_rows(
            "petitioner_history",
            &columns,
            &rows,
            "ON CONFLICT (case_id) DO NOTHING",
        )
        .await?;
    batch
        .where_in(
            "UPDATE {table} SET skipped_level = true",
            "petitioner_history",
            "case_id",
            flag_earlier,
        )
        .await?;
    flag_repeats(batch, &keys, &facts).await
}

/// Marks `repeats` on every petition that has an earlier one by the same
/// petitioner (of `keys`) or about the same unit and facts (of `facts`):
/// the new petitions of the batch, and older ones that a petition received
/// with an earlier time now precedes. A petition's mark depends only on
/// the petitions before it, so live batches and a rebuild agree.
async fn flag_repeats(
    batch: &mut Batch,
    keys: &[String],
    facts: &[String],
) -> Result<(), StoreError> {
    for (column, matching) in [
        (
            "petitioner_key",
            "e.petitioner_key = {table}.petitioner_key",
        ),
        (
            "facts_hash",
            "e.complained_unit = {table}.complained_unit AND e.facts_hash = {table}.facts_hash",
        ),
    ] {
        let values = if column == "petitioner_key" {
            keys
        } else {
            facts
        };
        if values.is_empty() {
            continue;
        }
        let table = batch.table("petitioner_history");
        let matching = matching.replace("{table}", &table);
        let sql = Sql::new(format!(
            "UPDATE {table} SET repeats = true WHERE {} AND NOT repeats AND EXISTS ( \
             SELECT 1 FROM {table} AS e WHERE {matching} \
             AND (e.received_at < {table}.received_at \
               OR (e.received_at = {table}.received_at AND e.case_id < {table}.case_id)))",
            batch.dialect().any(column, 1)
        ))
        .bind(values);
        batch.execute(&sql).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn names_and_contacts_are_compared_after_normalising() {
        assert_eq!(normalise(" Zhang  San. "), "zhangsan");
        assert_eq!(normalise("ＺＨＡＮＧ·ＳＡＮ"), "zhangsan");
        assert_eq!(normalise("张 三，"), "张三");
        let secret = PetitionerSecret::development();
        let key = |n: &str, c: Option<&str>| {
            petitioner_key(
                &secret,
                &Petitioner {
                    name: name(n),
                    contact: c.map(name),
                },
            )
        };
        let one = key("Zhang San", Some("138 0000 0000"));
        assert_eq!(one, key("zhang san", Some("+86 138-0000-0000")));
        assert_eq!(one, key("ZHANG SAN", Some("0086 13800000000")));
        assert_ne!(one, key("Zhang San", Some("13800000001")));
        assert_ne!(one, key("Zhang San", None));
        assert_ne!(one, key("Li Si", Some("13800000000")));
        // A hash, not the name: 64 hex digits.
        assert_eq!(one.len(), 64);
        assert!(!one.contains("zhang"));
    }

    #[test]
    fn the_parts_of_a_key_cannot_run_into_each_other() {
        let a = Petitioner {
            name: name("ab"),
            contact: Some(name("c")),
        };
        let b = Petitioner {
            name: name("a"),
            contact: Some(name("bc")),
        };
        let secret = PetitionerSecret::development();
        assert_ne!(petitioner_key(&secret, &a), petitioner_key(&secret, &b));
    }

    #[test]
    fn a_key_depends_on_the_secret_and_is_no_plain_hash() {
        let zhang = Petitioner {
            name: name("Zhang San"),
            contact: Some(name("13800000000")),
        };
        let one = PetitionerSecret::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let other = PetitionerSecret::new(b"fedcba9876543210fedcba9876543210").unwrap();
        assert_eq!(
            petitioner_key(&one, &zhang),
            petitioner_key(&one.clone(), &zhang)
        );
        assert_ne!(petitioner_key(&one, &zhang), petitioner_key(&other, &zhang));
        // Someone trying names and numbers with a plain SHA-256, as the
        // keys were made before, finds nothing.
        let plain = sha256_hex(&["petitioner", "zhangsan", "13800000000"]);
        assert_ne!(petitioner_key(&one, &zhang), plain);
        assert_ne!(
            petitioner_key(&PetitionerSecret::development(), &zhang),
            plain
        );
    }

    #[test]
    fn a_secret_is_long_enough_and_never_printed() {
        assert_eq!(
            PetitionerSecret::new(b"  short \n"),
            Err(SecretTooShort { len: 5 })
        );
        let secret = PetitionerSecret::new(b"0123456789abcdef\n").unwrap();
        assert_eq!(secret, PetitionerSecret::new(b"0123456789abcdef").unwrap());
        assert!(!format!("{secret:?}").contains("0123"));
        assert!(!secret.is_development());
        assert!(PetitionerSecret::development().is_development());
    }

    #[test]
    fn facts_match_whatever_the_spacing_and_punctuation() {
        let f = |s: &str| facts_hash(&Text::parse(s).unwrap());
        assert_eq!(
            f("The road has not been repaired."),
            f("the road  has not been repaired")
        );
        assert_ne!(
            f("The road has not been repaired."),
            f("The bridge has not.")
        );
    }
}
