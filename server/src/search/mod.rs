//! Full-text search over messages, with tantivy. The index lives in `<data_dir>/search/` and is
//! derived from the message log: it is never on the ack path. An indexer thread of its own reads
//! new entries from the log (the fan-out only notes "conversation C has entries up to seq S"),
//! adds text messages, applies edits and recalls, commits every [`COMMIT_EVERY`] at most, and
//! records per conversation up to which seq it has indexed. The lag is therefore bounded by that
//! interval plus the time to index what arrived meanwhile. Deleting the directory rebuilds the
//! index from the log at the next start.

mod tokenizer;

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use parley_protocol::frames::{ContentType, ConversationEvent, Message};
use parley_protocol::ids::{ConversationId, Seq};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED, STORED,
};
use tantivy::{doc, Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

use crate::store::Store;

/// The indexer commits at most this often (the bound on the search lag while idle).
pub const COMMIT_EVERY: Duration = Duration::from_millis(200);
/// Entries read from the log per conversation per round.
const READ_CHUNK: usize = 1000;

/// Whether the index needs to see `m`: text messages, and the edits and recalls that change
/// them. The fan-out tells the indexer only about these; the rest of a conversation is read
/// past once, when a later one comes (or at the next start).
pub fn indexes(m: &Message) -> bool {
    match m.event.as_deref() {
        None => m.content_type == ContentType::Text,
        Some(ConversationEvent::Edit { .. } | ConversationEvent::Recall(_)) => true,
        Some(_) => false,
    }
}

/// Search failed (the index is damaged or the disk failed); details are logged.
#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct SearchError(String);

fn fail(e: impl std::fmt::Display) -> SearchError {
    SearchError(e.to_string())
}

#[derive(Clone, Copy, Debug)]
struct Fields {
    /// Conversation id and seq, 16 bytes big-endian: one message's key.
    key: Field,
    conv: Field,
    seq: Field,
    /// Message id: orders results newest first, and pages them.
    id: Field,
    text: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer::NAME)
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        key: b.add_bytes_field("key", INDEXED),
        conv: b.add_u64_field("conv", INDEXED | FAST | STORED),
        seq: b.add_u64_field("seq", INDEXED | FAST | STORED),
        id: b.add_u64_field("id", INDEXED | FAST),
        text: b.add_text_field("text", text),
    };
    (b.build(), fields)
}

fn key(conv: ConversationId, seq: Seq) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&conv.get().to_be_bytes());
    k[8..].copy_from_slice(&seq.get().to_be_bytes());
    k
}

/// Conversations with new entries, waiting for the indexer.
#[derive(Debug, Default)]
struct Pending {
    heads: HashMap<ConversationId, Seq>,
    stop: bool,
}

/// The search index and its indexer.
pub struct Search {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    pending: Arc<(Mutex<Pending>, Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search").finish_non_exhaustive()
    }
}

/// One result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Where.
    pub conversation: ConversationId,
    /// Which entry.
    pub seq: Seq,
}

impl Search {
    /// Opens (or creates, then fills from the log) the index under `dir` and starts the indexer.
    pub fn open(dir: &Path, store: Store) -> Result<Search, SearchError> {
        let (schema, fields) = schema();
        let fresh = !dir.join("meta.json").exists();
        std::fs::create_dir_all(dir).map_err(fail)?;
        let index = match fresh {
            true => Index::create_in_dir(dir, schema),
            false => Index::open_in_dir(dir),
        }
        .map_err(fail)?;
        index
            .tokenizers()
            .register(tokenizer::NAME, tokenizer::MessageTokenizer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(fail)?;
        let writer: IndexWriter = index.writer_with_num_threads(1, 32 << 20).map_err(fail)?;
        if fresh {
            // A new index holds nothing, whatever positions were recorded for an old one.
            store.clear_search_positions().map_err(fail)?;
        }
        let pending = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let mut indexer = Indexer {
            store,
            writer,
            fields,
            pending: pending.clone(),
            positions: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("search-indexer".into())
            .spawn(move || indexer.run())
            .map_err(fail)?;
        Ok(Search {
            index,
            reader,
            fields,
            pending,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Notes that `conv` has entries up to `seq` (cheap: the indexer reads them itself).
    pub fn notify(&self, conv: ConversationId, seq: Seq) {
        let (lock, cv) = &*self.pending;
        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
        let at = p.heads.entry(conv).or_default();
        *at = (*at).max(seq);
        cv.notify_one();
    }

    /// [`Search::notify`] for several conversations, under one lock.
    pub fn notify_many(&self, heads: impl Iterator<Item = (ConversationId, Seq)>) {
        let (lock, cv) = &*self.pending;
        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
        for (conv, seq) in heads {
            let at = p.heads.entry(conv).or_default();
            *at = (*at).max(seq);
        }
        cv.notify_one();
    }

    /// Stops the indexer after a last commit.
    pub fn stop(&self) {
        {
            let (lock, cv) = &*self.pending;
            lock.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
            cv.notify_one();
        }
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Messages whose text matches every token of `query`, in `convs`, older than message id
    /// `before` (0: any), newest first, at most `limit`.
    pub fn search(
        &self,
        query: &str,
        convs: &[ConversationId],
        before: u64,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let tokens = tokenizer::tokens(query);
        if tokens.is_empty() || convs.is_empty() {
            return Ok(Vec::new());
        }
        for t in tokens {
            let term = Term::from_field_text(f.text, &t.text);
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        let conv_terms = convs.iter().map(|c| Term::from_field_u64(f.conv, c.get()));
        clauses.push((Occur::Must, Box::new(TermSetQuery::new(conv_terms))));
        if before != 0 {
            let upper = Term::from_field_u64(f.id, before);
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(Bound::Unbounded, Bound::Excluded(upper))),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit.max(1)).order_by_fast_field::<u64>("id", Order::Desc);
        let found = searcher.search(&query, &top).map_err(fail)?;
        let mut hits = Vec::with_capacity(found.len());
        for (_, address) in found {
            let doc: TantivyDocument = searcher.doc(address).map_err(fail)?;
            let get = |field| {
                doc.get_first(field)
                    .and_then(|v| tantivy::schema::Value::as_u64(&v))
                    .unwrap_or(0)
            };
            if let Ok(conversation) = ConversationId::try_from(get(f.conv)) {
                hits.push(Hit {
                    conversation,
                    seq: Seq(get(f.seq)),
                });
            }
        }
        Ok(hits)
    }

    /// Waits until every commit of the indexer so far is visible to searches (tests).
    pub fn refresh(&self) -> Result<(), SearchError> {
        self.reader.reload().map_err(fail)
    }

    /// Documents in the index.
    pub fn docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The index itself (for benchmarks that fill it directly).
    pub fn index(&self) -> &Index {
        &self.index
    }
}

impl Drop for Search {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Indexer {
    store: Store,
    writer: IndexWriter,
    fields: Fields,
    pending: Arc<(Mutex<Pending>, Condvar)>,
    /// Up to which seq each conversation is indexed (committed or about to be).
    positions: HashMap<ConversationId, Seq>,
}

impl Indexer {
    fn run(&mut self) {
        if let Err(e) = self.catch_up() {
            tracing::error!(error = %e, "search index: catching up with the log failed");
        }
        let mut dirty: Vec<(ConversationId, Seq)> = Vec::new();
        let mut last_commit = Instant::now();
        loop {
            let (heads, stop) = {
                let (lock, cv) = &*self.pending;
                let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
                if p.heads.is_empty() && !p.stop {
                    let wait = if dirty.is_empty() {
                        Duration::from_secs(3600)
                    } else {
                        COMMIT_EVERY.saturating_sub(last_commit.elapsed())
                    };
                    p = cv
                        .wait_timeout(p, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                (std::mem::take(&mut p.heads), p.stop)
            };
            for (conv, head) in heads {
                match self.index_conversation(conv, head) {
                    Ok(Some(at)) => dirty.push((conv, at)),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(%conv, error = %e, "search: not indexed"),
                }
            }
            if !dirty.is_empty() && (stop || last_commit.elapsed() >= COMMIT_EVERY) {
                match self.writer.commit() {
                    Ok(_) => {
                        if let Err(e) = self.store.set_search_positions(&dirty) {
                            tracing::warn!(error = %e, "search positions not recorded");
                        }
                        dirty.clear();
                    }
                    Err(e) => tracing::error!(error = %e, "search index commit failed"),
                }
                last_commit = Instant::now();
            }
            if stop {
                return;
            }
        }
    }

    /// Indexes what the log holds beyond the recorded positions. Anything after a position may
    /// have reached the index before a crash kept the position: it is deleted first.
    fn catch_up(&mut self) -> Result<(), SearchError> {
        self.positions = self.store.search_positions().map_err(fail)?;
        let mut todo = Vec::new();
        for (conv, head) in self.store.conversation_heads() {
            let at = self.positions.get(&conv).copied().unwrap_or(Seq::ZERO);
            if head > at {
                let f = self.fields;
                let stale = BooleanQuery::new(vec![
                    (
                        Occur::Must,
                        Box::new(TermQuery::new(
                            Term::from_field_u64(f.conv, conv.get()),
                            IndexRecordOption::Basic,
                        )) as Box<dyn Query>,
                    ),
                    (
                        Occur::Must,
                        Box::new(RangeQuery::new(
                            Bound::Excluded(Term::from_field_u64(f.seq, at.get())),
                            Bound::Unbounded,
                        )),
                    ),
                ]);
                self.writer.delete_query(Box::new(stale)).map_err(fail)?;
                todo.push((conv, head));
            }
        }
        let mut done = Vec::new();
        for (conv, head) in todo {
            if let Some(at) = self.index_conversation(conv, head)? {
                done.push((conv, at));
            }
        }
        if !done.is_empty() {
            self.writer.commit().map_err(fail)?;
            self.store.set_search_positions(&done).map_err(fail)?;
            tracing::info!(
                conversations = done.len(),
                "search index caught up with the log"
            );
        }
        Ok(())
    }

    /// Indexes `conv`'s entries after its position up to `head`; returns the new position.
    fn index_conversation(
        &mut self,
        conv: ConversationId,
        head: Seq,
    ) -> Result<Option<Seq>, SearchError> {
        let mut at = self.positions.get(&conv).copied().unwrap_or(Seq::ZERO);
        if head <= at {
            return Ok(None);
        }
        while at < head {
            let page = self
                .store
                .messages(conv, at, head, READ_CHUNK, usize::MAX)
                .map_err(fail)?;
            let Some(last) = page.last().map(|m| m.seq) else {
                break;
            };
            for m in &page {
                self.index_entry(m)?;
            }
            at = last;
        }
        self.positions.insert(conv, at);
        Ok(Some(at))
    }

    fn add(&mut self, m: &Message, text: &str) -> Result<(), SearchError> {
        let f = self.fields;
        self.writer
            .add_document(doc!(
                f.key => key(m.conversation, m.seq).to_vec(),
                f.conv => m.conversation.get(),
                f.seq => m.seq.get(),
                f.id => m.id.get(),
                f.text => text,
            ))
            .map_err(fail)?;
        Ok(())
    }

    fn index_entry(&mut self, m: &Message) -> Result<(), SearchError> {
        let f = self.fields;
        match m.event.as_deref() {
            None if m.content_type == ContentType::Text => {
                let text = String::from_utf8_lossy(&m.content).into_owned();
                self.add(m, &text)?;
            }
            Some(ConversationEvent::Edit { seq, content }) => {
                let target = Term::from_field_bytes(f.key, &key(m.conversation, *seq));
                self.writer.delete_term(target);
                // The edited message, as it reads now (a recalled one is not indexed again).
                let mut original = self
                    .store
                    .messages(m.conversation, Seq(seq.get() - 1), *seq, 1, usize::MAX)
                    .map_err(fail)?;
                self.store
                    .render(m.conversation, &mut original)
                    .map_err(fail)?;
                if let Some(o) = original.pop() {
                    let recalled = o.amended.as_ref().is_some_and(|a| a.recalled);
                    if !recalled && o.content_type == ContentType::Text {
                        let text = String::from_utf8_lossy(content).into_owned();
                        self.add(&o, &text)?;
                    }
                }
            }
            Some(ConversationEvent::Recall(seq)) => {
                let target = Term::from_field_bytes(f.key, &key(m.conversation, *seq));
                self.writer.delete_term(target);
            }
            _ => {}
        }
        Ok(())
    }
}
