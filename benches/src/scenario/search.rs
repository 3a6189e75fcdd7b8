//! `search`: full-text search over one user's messages. Writers fill N text messages into C
//! groups of the searching user as fast as the server accepts them; then the scenario waits
//! until the index has caught up (a search for a sentinel word carried by the last message finds
//! it) and runs Q searches over all the user's conversations, one after another. Reports the
//! fill time, the index's catch-up time, the latency of a search, its results, the server's CPU
//! per search, and (for a spawned server) its memory and the size of the index on disk.
//!
//! The text: 64..=200 bytes per message, words drawn from a fixed vocabulary of 4,000 made-up
//! words (Zipf-distributed, so a few are in most messages and most are rare), a quarter of the
//! messages with a run of Chinese words (from about 170), all from a seeded generator: the same
//! `--seed`, `--messages`, `--conversations` and `--connections` write the same messages.
//!
//! Setup: 1 + K password registrations (the searching user and K writers, K =
//! `--connections`). Writer w creates the groups c ≡ w (mod K), each with the searching user as
//! the other member, and writes into them round-robin with `--window` sends in flight, paced
//! under the request rate the server announces. The searching user is offline meanwhile (no
//! pushes to carry). A spawned server gets `--server-config` with `limits.requests_per_second =
//! 0` added (unless the file sets it, or `--keep-rate-limit`), so the fill is bound by the
//! server, not by the per-connection limit; against a server with the default 2,000/s the 16
//! writers allow about 30,000 messages/s.
//!
//! Queries, drawn from the seed: one common word (30 %), one rare word (30 %), a common and a
//! less common word together (20 %), a Chinese word of two characters (15 %; the server matches
//! both characters and the pair), and a word of the vocabulary never written (5 %). Checks: every
//! result is a text message of the user's conversations containing every word of the query,
//! newest first; for single words, the number of results and `has_more` are exactly what the
//! writers wrote (counted while writing); for Chinese words, at least that (the pair may also
//! occur across two neighbouring words). If the server runs without search (`FORBIDDEN`), the
//! run reports the fill only.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use hdrhistogram::Histogram;
use parley_protocol::frames::{
    ContentType, ErrorInfo, Message, Push, Request, Response, SendRequest, ServerFrame,
};
use parley_protocol::ids::{ClientMsgId, ConversationId, Seq};
use parley_protocol::ErrorCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::idle::slice_len;
use super::{machine, register_with_progress, round3, Common, Mark, Pacer, Target};
use crate::client::{account_name, create_group, token_login, Identity};
use crate::conn::Conn;
use crate::peer::SERVER_MAX_INFLIGHT;
use crate::progress::Progress;
use crate::stats::{histogram, summarize};

/// Options of `search`.
#[derive(Clone, Debug, clap::Args)]
pub struct SearchArgs {
    /// Options every scenario takes.
    #[command(flatten)]
    pub common: Common,
    /// Text messages written before searching (the last one carries the sentinel word).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Conversations (groups of the searching user) the messages are spread over.
    #[arg(long, default_value_t = 100)]
    pub conversations: usize,
    /// Writers: users with one connection each, pipelining their sends (at most
    /// --conversations).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Unacknowledged sends per writer (at most 256, the server's limit).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Searches measured, one after another.
    #[arg(long, default_value_t = 500)]
    pub queries: usize,
    /// Results per search asked for (1..=100, the server's maximum).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Seed of the message text and of the queries.
    #[arg(long, default_value_t = 0x5eed)]
    pub seed: u64,
    /// Leave the spawned server's per-connection request limit as configured (by default the
    /// scenario lifts it, unless the --server-config file sets `requests_per_second`).
    #[arg(long)]
    pub keep_rate_limit: bool,
    /// Longest wait, in seconds, for the index to catch up once the last message is
    /// acknowledged.
    #[arg(long, default_value_t = 300.0)]
    pub catchup_timeout: f64,
    /// Bound on the whole run, in seconds: the fill stops writing at 70 % of it, the wait for
    /// the index at 85 %, the searches at 100 % (each reports whether it was cut short).
    #[arg(long, default_value_t = 1800.0)]
    pub max_seconds: f64,
}

// ---------------------------------------------------------------------------------------------
// Deterministic text

/// splitmix64: small, fast, and the same everywhere.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x243f_6a88_85a3_08d3)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Words of the vocabulary used in messages, by rank (Zipf, exponent 1).
const WORDS: usize = 4000;
/// Further words of the vocabulary that no message contains (queries expecting nothing).
const ABSENT: usize = 100;
/// Seed of the vocabulary itself (fixed: `--seed` varies the text, not the words).
const VOCAB_SEED: u64 = 0x766f_6361_6273;
/// Message text length, bytes.
const MIN_TEXT: usize = 64;
const MAX_TEXT: usize = 200;
/// Share of messages with a run of Chinese words, 1 in this many.
const CHINESE_EVERY: usize = 4;

const ONSETS: [&str; 24] = [
    "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "ch",
    "sh", "th", "tr", "br", "st",
];
const NUCLEI: [&str; 8] = ["a", "e", "i", "o", "u", "ai", "ou", "ee"];
const CODAS: [&str; 5] = ["n", "r", "s", "t", "ng"];

/// Common Chinese words of two characters.
const CHINESE: &[&str] = &[
    "时间", "问题", "工作", "朋友", "今天", "明天", "昨天", "我们", "你们", "他们", "什么", "怎么",
    "已经", "可以", "没有", "知道", "觉得", "现在", "以后", "以前", "开始", "结束", "会议", "项目",
    "客户", "公司", "产品", "设计", "测试", "服务", "系统", "数据", "网络", "手机", "电脑", "软件",
    "程序", "代码", "文件", "图片", "视频", "音乐", "电影", "晚饭", "午饭", "早饭", "咖啡", "茶叶",
    "天气", "下雨", "周末", "假期", "旅行", "机场", "火车", "地铁", "学校", "老师", "学生", "考试",
    "作业", "医院", "医生", "身体", "健康", "运动", "跑步", "游泳", "足球", "篮球", "比赛", "新闻",
    "经济", "市场", "价格", "银行", "北京", "上海", "广州", "深圳", "杭州", "成都", "中国", "世界",
    "城市", "家庭", "孩子", "父母", "妈妈", "爸爸", "生日", "礼物", "快乐", "谢谢", "不错", "好的",
    "当然", "一起", "马上", "等等", "一下", "消息", "电话", "邮件", "地址", "房间", "厨房", "钥匙",
    "门口", "楼下", "超市", "商店", "衣服", "鞋子", "书店", "图书", "历史", "文化", "艺术", "科学",
    "技术", "研究", "报告", "计划", "安排", "决定", "讨论", "意见", "建议", "结果", "原因", "方法",
    "机会", "经验", "能力", "责任", "压力", "心情", "感觉", "希望", "梦想", "未来", "准备", "需要",
    "应该", "重要", "简单", "复杂", "容易", "困难", "安全", "危险", "发布", "版本", "更新", "修复",
    "错误", "搜索", "索引", "性能", "延迟", "速度",
];

/// Normalised cumulative Zipf weights of ranks `1..=n` (exponent 1).
fn zipf_cumulative(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cum: Vec<f64> = (1..=n)
        .map(|r| {
            acc += 1.0 / r as f64;
            acc
        })
        .collect();
    for c in &mut cum {
        *c /= acc;
    }
    cum
}

fn pick(cumulative: &[f64], u: f64) -> usize {
    cumulative
        .partition_point(|c| *c < u)
        .min(cumulative.len() - 1)
}

/// The vocabulary: made-up words (by rank, then the absent ones) and Chinese words.
#[derive(Debug)]
struct Vocab {
    words: Vec<String>,
    cumulative: Vec<f64>,
    chinese: Vec<&'static str>,
    chinese_cumulative: Vec<f64>,
}

/// Messages containing each word (counted once per message), for the expected results.
#[derive(Clone, Debug)]
struct Counts {
    words: Vec<u64>,
    chinese: Vec<u64>,
}

impl Counts {
    fn new(v: &Vocab) -> Counts {
        Counts {
            words: vec![0; v.words.len()],
            chinese: vec![0; v.chinese.len()],
        }
    }

    fn add(&mut self, other: &Counts) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a += b;
        }
        for (a, b) in self.chinese.iter_mut().zip(&other.chinese) {
            *a += b;
        }
    }
}

/// One message's words, reused between messages.
#[derive(Default)]
struct Scratch {
    words: Vec<usize>,
    chinese: Vec<usize>,
    token: String,
}

fn capitalized(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

impl Vocab {
    fn new() -> Vocab {
        let mut rng = Rng::new(VOCAB_SEED);
        let mut seen = HashSet::new();
        let mut words = Vec::with_capacity(WORDS + ABSENT);
        while words.len() < WORDS + ABSENT {
            let mut w = String::new();
            for _ in 0..1 + rng.below(3) {
                w.push_str(ONSETS[rng.below(ONSETS.len())]);
                w.push_str(NUCLEI[rng.below(NUCLEI.len())]);
            }
            if rng.below(3) == 0 {
                w.push_str(CODAS[rng.below(CODAS.len())]);
            }
            if (2..=12).contains(&w.len()) && seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut zh_seen = HashSet::new();
        let chinese: Vec<&'static str> = CHINESE
            .iter()
            .copied()
            .filter(|w| zh_seen.insert(*w))
            .collect();
        Vocab {
            cumulative: zipf_cumulative(WORDS),
            chinese_cumulative: zipf_cumulative(chinese.len()),
            words,
            chinese,
        }
    }

    /// One message of `MIN_TEXT..=MAX_TEXT` bytes; counts its words into `counts`.
    fn message(&self, rng: &mut Rng, counts: &mut Counts, s: &mut Scratch) -> String {
        let target = MIN_TEXT + rng.below(MAX_TEXT - MIN_TEXT + 1);
        let chinese_at = (rng.below(CHINESE_EVERY) == 0).then(|| rng.below(4));
        let mut text = String::with_capacity(MAX_TEXT + 8);
        s.words.clear();
        s.chinese.clear();
        let mut n = 0;
        while text.len() < target {
            s.token.clear();
            let (mut word, mut zh) = (None, Vec::new());
            if chinese_at == Some(n) {
                let k = 2 + rng.below(4);
                for j in 0..k {
                    let z = pick(&self.chinese_cumulative, rng.unit());
                    s.token.push_str(self.chinese[z]);
                    zh.push(z);
                    if j + 1 < k && rng.below(4) == 0 {
                        s.token.push('，');
                    }
                }
            } else {
                let w = pick(&self.cumulative, rng.unit());
                match n {
                    0 => s.token.push_str(&capitalized(&self.words[w])),
                    _ => s.token.push_str(&self.words[w]),
                }
                if rng.below(10) == 0 {
                    s.token.push(if rng.below(2) == 0 { ',' } else { '.' });
                }
                word = Some(w);
            }
            let gap = usize::from(!text.is_empty());
            // The longest token is 5 Chinese words and 4 commas (42 bytes): a text cut here is long enough.
            if text.len() + gap + s.token.len() > MAX_TEXT {
                break;
            }
            if gap == 1 {
                text.push(' ');
            }
            text.push_str(&s.token);
            s.words.extend(word);
            s.chinese.extend(zh);
            n += 1;
        }
        for v in [&mut s.words, &mut s.chinese] {
            v.sort_unstable();
            v.dedup();
        }
        for w in &s.words {
            counts.words[*w] += 1;
        }
        for z in &s.chinese {
            counts.chinese[*z] += 1;
        }
        text
    }
}

/// The server's tokenizer (server/src/search/tokenizer.rs), to check results: runs of letters
/// and digits are words, lowercased; every Chinese, Japanese or Korean character is a token,
/// and so is every pair of neighbouring ones.
fn tokens(text: &str) -> Vec<String> {
    fn is_cjk(c: char) -> bool {
        matches!(c as u32,
            0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF
            | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
    }
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
            if let Some(p) = prev {
                out.push(format!("{p}{c}"));
            }
            prev = Some(c);
        } else if c.is_alphanumeric() {
            prev = None;
            if word.len() < 64 {
                word.extend(c.to_lowercase());
            }
        } else {
            prev = None;
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Queries

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Common,
    Rare,
    Pair,
    Chinese,
    Absent,
}

const KINDS: [Kind; 5] = [
    Kind::Common,
    Kind::Rare,
    Kind::Pair,
    Kind::Chinese,
    Kind::Absent,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Common => "common_word",
            Kind::Rare => "rare_word",
            Kind::Pair => "two_words",
            Kind::Chinese => "chinese_bigram",
            Kind::Absent => "absent_word",
        }
    }
}

/// Messages matching a query, as far as the writers know.
#[derive(Clone, Copy, Debug)]
enum Expected {
    Exactly(u64),
    AtLeast(u64),
    Unknown,
}

#[derive(Clone, Debug)]
struct Query {
    kind: Kind,
    text: String,
    expected: Expected,
}

/// Rank bounds of the query classes.
const COMMON_RANKS: usize = 50;
const RARE_FROM: usize = 1500;
const PAIR_COMMON: usize = 100;
const PAIR_OTHER_TO: usize = 1500;

fn queries(v: &Vocab, counts: &Counts, n: usize, seed: u64) -> Vec<Query> {
    let mut rng = Rng::new(seed.rotate_left(32) ^ 0x7175_6572_7973);
    let word = |rng: &mut Rng, w: usize| match rng.below(4) {
        0 => capitalized(&v.words[w]),
        _ => v.words[w].clone(),
    };
    (0..n)
        .map(|_| {
            let (kind, text, expected) = match rng.below(100) {
                0..30 => {
                    let w = rng.below(COMMON_RANKS);
                    let e = Expected::Exactly(counts.words[w]);
                    (Kind::Common, word(&mut rng, w), e)
                }
                30..60 => {
                    let w = RARE_FROM + rng.below(WORDS - RARE_FROM);
                    let e = Expected::Exactly(counts.words[w]);
                    (Kind::Rare, word(&mut rng, w), e)
                }
                60..80 => {
                    let a = rng.below(PAIR_COMMON);
                    let b = PAIR_COMMON + rng.below(PAIR_OTHER_TO - PAIR_COMMON);
                    let text = format!("{} {}", word(&mut rng, a), word(&mut rng, b));
                    (Kind::Pair, text, Expected::Unknown)
                }
                80..95 => {
                    let z = rng.below(v.chinese.len());
                    let e = Expected::AtLeast(counts.chinese[z]);
                    (Kind::Chinese, v.chinese[z].to_owned(), e)
                }
                _ => {
                    let w = WORDS + rng.below(ABSENT);
                    (Kind::Absent, word(&mut rng, w), Expected::Exactly(0))
                }
            };
            Query {
                kind,
                text,
                expected,
            }
        })
        .collect()
}

/// What is wrong with an answer to `q`, if anything: (messages not matching, a wrong count,
/// results out of order), with a description of the first problem.
fn check_answer(
    q: &Query,
    messages: &[Message],
    has_more: bool,
    limit: u32,
    ours: &HashSet<ConversationId>,
) -> (u64, bool, bool, Option<String>) {
    let want = tokens(&q.text);
    let mut first = None;
    let mut wrong = 0;
    for m in messages {
        let text = String::from_utf8_lossy(&m.content);
        let have: HashSet<String> = tokens(&text).into_iter().collect();
        let ok = ours.contains(&m.conversation)
            && m.content_type == ContentType::Text
            && want.iter().all(|t| have.contains(t));
        if !ok {
            wrong += 1;
            first.get_or_insert_with(|| {
                format!(
                    "{:?}: result {text:?} in {} does not match",
                    q.text, m.conversation
                )
            });
        }
    }
    let out_of_order = messages.windows(2).any(|w| w[0].id.get() <= w[1].id.get());
    if out_of_order {
        first.get_or_insert_with(|| format!("{:?}: results not newest first", q.text));
    }
    let got = messages.len() as u64;
    let limit = u64::from(limit);
    let count_ok = got <= limit
        && match q.expected {
            Expected::Exactly(n) => got == n.min(limit) && has_more == (n > limit),
            Expected::AtLeast(n) if n > limit => got == limit && has_more,
            Expected::AtLeast(n) => got >= n,
            Expected::Unknown => true,
        };
    if !count_ok {
        first.get_or_insert_with(|| {
            format!(
                "{:?}: {got} results (has_more {has_more}), expected {:?} with limit {limit}",
                q.text, q.expected
            )
        });
    }
    (wrong, !count_ok, out_of_order, first)
}

/// One `SearchMessages` over all the caller's conversations: its latency (request written to
/// the answer's last byte, before decoding) and the answer.
async fn search_once(
    conn: &mut Conn,
    query: &str,
    limit: u32,
) -> anyhow::Result<(Duration, Result<(Vec<Message>, bool), ErrorInfo>)> {
    let t0 = Instant::now();
    let id = conn.writer.queue(Request::SearchMessages {
        query: query.to_owned(),
        conversation: None,
        before: 0,
        limit,
    });
    conn.writer.flush().await?;
    loop {
        let body = tokio::time::timeout(Duration::from_secs(60), conn.reader.next())
            .await
            .map_err(|_| anyhow!("no answer to a search within 60 s"))??
            .ok_or_else(|| anyhow!("the server closed the connection"))?;
        let took = t0.elapsed();
        match ServerFrame::decode(body)? {
            ServerFrame::Response(rid, r) if rid == id => {
                return match r {
                    Response::SearchResult { messages, has_more } => {
                        Ok((took, Ok((messages, has_more))))
                    }
                    Response::Error(e) => Ok((took, Err(e))),
                    other => bail!("expected SearchResult, got {other:?}"),
                }
            }
            ServerFrame::Response(rid, _) => bail!("unexpected response {rid}"),
            ServerFrame::Push(Push::GoAway { reason, message }) => {
                bail!("server sent GoAway {reason:?}: {message}")
            }
            ServerFrame::Push(_) => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fill

/// What every writer shares.
#[derive(Clone)]
struct FillPlan {
    vocab: Arc<Vocab>,
    seed: u64,
    window: usize,
    /// Stop starting sends at this instant.
    until: Instant,
    acked: Arc<AtomicU64>,
}

/// One writer's result.
struct Filled {
    conn: Conn,
    counts: Counts,
    sent: u64,
    bytes: u64,
}

/// Writes `n` messages round-robin into `convs` with `plan.window` in flight, paced under the
/// announced rate; fails on any refusal.
async fn fill_writer(
    mut conn: Conn,
    id: Identity,
    w: usize,
    convs: Vec<ConversationId>,
    n: u64,
    plan: FillPlan,
) -> anyhow::Result<Filled> {
    let mut rng = Rng::new(plan.seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut counts = Counts::new(&plan.vocab);
    let mut scratch = Scratch::default();
    let mut pacer = Pacer::new(id.max_requests_per_second);
    let mut inflight = HashSet::new();
    let (mut next, mut bytes) = (0u64, 0u64);
    loop {
        let open = next < n && Instant::now() < plan.until;
        while open && next < n && inflight.len() < plan.window && pacer.allows() {
            pacer.sent += 1;
            let text = plan.vocab.message(&mut rng, &mut counts, &mut scratch);
            bytes += text.len() as u64;
            let req = Request::Send(SendRequest {
                conversation: convs[(next % convs.len() as u64) as usize],
                content_type: ContentType::Text,
                content: Bytes::from(text),
                client_msg_id: ClientMsgId::try_from(format!("f{w}-{next}"))?,
                reply_to: Seq::ZERO,
                mentions: vec![],
                mention_all: false,
            });
            inflight.insert(conn.writer.queue(req).get());
            next += 1;
        }
        conn.writer.flush().await?;
        if inflight.is_empty() && (next == n || Instant::now() >= plan.until) {
            return Ok(Filled {
                conn,
                counts,
                sent: next,
                bytes,
            });
        }
        let may_send = open && inflight.len() < plan.window;
        tokio::select! {
            frame = tokio::time::timeout(Duration::from_secs(60), conn.reader.next_frame()) => {
                match frame.map_err(|_| anyhow!("no acknowledgement within 60 s"))?? {
                    None => bail!("the server closed the connection"),
                    Some(ServerFrame::Response(rid, Response::SendAck(_)))
                        if inflight.remove(&rid.get()) =>
                    {
                        plan.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(ServerFrame::Response(_, Response::Error(e))) => bail!("send refused: {e}"),
                    Some(ServerFrame::Response(rid, other)) => {
                        bail!("unexpected response {rid}: {other:?}")
                    }
                    Some(ServerFrame::Push(Push::GoAway { reason, message })) => {
                        bail!("server sent GoAway {reason:?}: {message}")
                    }
                    Some(ServerFrame::Push(_)) => {}
                }
            }
            _ = tokio::time::sleep_until(pacer.next_at()), if may_send => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// The spawned server's configuration: `--server-config`'s file with `limits.requests_per_second
/// = 0` added, unless the file sets it or `--keep-rate-limit`; `None` to leave it as it is.
fn lifted_config(
    c: &Common,
    keep: bool,
) -> anyhow::Result<Option<(tempfile::TempDir, PathBuf, String)>> {
    if !c.spawn_server || keep {
        return Ok(None);
    }
    let text = match &c.server_config {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => String::new(),
    };
    if text.contains("requests_per_second") {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len() + 48);
    let mut placed = false;
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        let header = line.split('#').next().unwrap_or_default().trim();
        if !placed && header == "[limits]" {
            out.push_str("requests_per_second = 0\n");
            placed = true;
        }
    }
    if !placed {
        out.push_str("\n[limits]\nrequests_per_second = 0\n");
    }
    let dir = tempfile::Builder::new()
        .prefix("imload-config-")
        .tempdir()?;
    let path = dir.path().join("server.toml");
    std::fs::write(&path, &out)?;
    Ok(Some((dir, path, out)))
}

/// Total size of the files under `dir` (0 if it does not exist).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn mib(bytes: u64) -> f64 {
    round3(bytes as f64 / (1 << 20) as f64)
}

/// Sizes of a spawned server's data directory and its index, holding `messages`.
fn disk(target: &Target, messages: u64) -> Value {
    match &target.server {
        Some(s) => {
            let all = dir_bytes(s.data_dir());
            let search = dir_bytes(&s.data_dir().join("search"));
            json!({
                "search_dir_mib": mib(search),
                "search_bytes_per_message": round3(search as f64 / messages.max(1) as f64),
                "data_dir_mib": mib(all),
            })
        }
        None => Value::Null,
    }
}

/// Per-kind figures of the searches.
struct KindStats {
    latency: Histogram<u64>,
    queries: u64,
    results: u64,
    with_more: u64,
    empty: u64,
}

impl KindStats {
    fn new() -> KindStats {
        KindStats {
            latency: histogram(),
            queries: 0,
            results: 0,
            with_more: 0,
            empty: 0,
        }
    }

    fn report(&self) -> Value {
        json!({
            "queries": self.queries,
            "latency": summarize(&self.latency),
            "results_mean": round3(self.results as f64 / self.queries.max(1) as f64),
            "with_has_more": self.with_more,
            "with_no_results": self.empty,
        })
    }
}

/// Runs `search`.
pub async fn run(args: SearchArgs) -> anyhow::Result<Value> {
    let mut a = args;
    if a.common.smoke {
        a.messages = a.messages.min(3000);
        a.conversations = a.conversations.min(10);
        a.connections = a.connections.min(4);
        a.queries = a.queries.min(40);
        a.catchup_timeout = a.catchup_timeout.min(30.0);
        a.max_seconds = a.max_seconds.min(90.0);
    }
    anyhow::ensure!(a.messages > 0, "--messages must be positive");
    anyhow::ensure!(a.conversations > 0, "--conversations must be positive");
    anyhow::ensure!(a.max_seconds > 0.0, "--max-seconds must be positive");
    a.connections = a.connections.clamp(1, a.conversations);
    a.window = a.window.clamp(1, SERVER_MAX_INFLIGHT);
    a.limit = a.limit.clamp(1, 100);
    let bound = Duration::from_secs_f64(a.max_seconds);
    // The phases stop themselves; this only catches a server that stops answering in setup.
    tokio::time::timeout(bound + Duration::from_secs(60), run_bounded(a))
        .await
        .map_err(|_| anyhow!("the run took longer than --max-seconds and a minute"))?
}

async fn run_bounded(a: SearchArgs) -> anyhow::Result<Value> {
    let started = Instant::now();
    let bound = Duration::from_secs_f64(a.max_seconds);
    let fill_until = started + bound.mul_f64(0.70);
    let catchup_until = started + bound.mul_f64(0.85);
    let queries_until = started + bound;
    let lifted = lifted_config(&a.common, a.keep_rate_limit)?;
    let mut common = a.common.clone();
    if let Some((_, path, _)) = &lifted {
        common.server_config = Some(path.clone());
    }
    let c = &common;
    let vocab = Arc::new(Vocab::new());
    let target = Target::resolve(c).await?;
    let connector = target.connector(c, super::sources(0, c.sources))?;

    // Setup: the searching user and K writers; writer w creates the groups c ≡ w (mod K).
    let k = a.connections;
    let names = (0..=k).map(|i| account_name(target.run_id, 0, i)).collect();
    let (mut clients, register_s) =
        register_with_progress(&connector, names, c.setup_concurrency).await?;
    let writers = clients.split_off(1);
    let (sconn, searcher) = clients.pop().ok_or_else(|| anyhow!("no searching user"))?;
    sconn.close().await;
    let announced = writers
        .first()
        .map_or(0, |(_, id)| id.max_requests_per_second);
    let t = Instant::now();
    let made = futures::future::try_join_all(writers.into_iter().enumerate().map(
        |(w, (mut conn, id))| {
            let peer = searcher.user;
            let count = a.conversations;
            async move {
                let mut pacer = Pacer::new(id.max_requests_per_second);
                let mut convs = Vec::new();
                for i in (w..count).step_by(k) {
                    pacer.take().await;
                    convs.push(create_group(&mut conn, &format!("imload-s{i}"), vec![peer]).await?);
                }
                Ok::<_, anyhow::Error>((conn, id, convs))
            }
        },
    ))
    .await?;
    let create_s = t.elapsed().as_secs_f64();
    let ours: HashSet<ConversationId> = made.iter().flat_map(|(_, _, cs)| cs.clone()).collect();
    let first_conv = made
        .first()
        .and_then(|(_, _, cs)| cs.first().copied())
        .ok_or_else(|| anyhow!("no conversation"))?;

    // Fill: N - 1 messages over the writers, then the sentinel once all are acknowledged.
    let acked = Arc::new(AtomicU64::new(0));
    let plan = FillPlan {
        vocab: vocab.clone(),
        seed: a.seed,
        window: a.window,
        until: fill_until,
        acked: acked.clone(),
    };
    let bar = Progress::new("filling", a.messages);
    let ticker = {
        let (acked, bar) = (acked.clone(), bar.clone());
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let n = acked.load(Ordering::Relaxed);
                bar.set(n);
                let now = Instant::now();
                if now.duration_since(last.0) >= Duration::from_secs(1) {
                    let rate = (n - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                    bar.message(format!("{rate:.0} msgs/s"));
                    last = (now, n);
                }
            }
        })
    };
    let m_fill0 = Mark::now(&target);
    let filled = futures::future::try_join_all(made.into_iter().enumerate().map(
        |(w, (conn, id, convs))| {
            let n = slice_len((a.messages - 1) as usize, k, w) as u64;
            fill_writer(conn, id, w, convs, n, plan.clone())
        },
    ))
    .await;
    ticker.abort();
    bar.finish();
    let filled = filled.context("fill")?;
    let mut counts = Counts::new(&vocab);
    let (mut sent, mut bytes) = (0u64, 0u64);
    let mut conns = Vec::with_capacity(filled.len());
    for f in filled {
        counts.add(&f.counts);
        sent += f.sent;
        bytes += f.bytes;
        conns.push(f.conn);
    }
    // The searching user comes online before the sentinel, so its login is not in the wait.
    let mut sconn = connector.connect().await?;
    token_login(&mut sconn, &searcher).await?;
    let sentinel = format!("zqsentinel{:08x}{:x}", target.run_id, a.seed);
    let mut wconn = conns.remove(0);
    for conn in conns {
        conn.close().await;
    }
    let r = wconn
        .call(Request::Send(SendRequest {
            conversation: first_conv,
            content_type: ContentType::Text,
            content: Bytes::from(format!("{sentinel} {sentinel}")),
            client_msg_id: ClientMsgId::try_from("sentinel")?,
            reply_to: Seq::ZERO,
            mentions: vec![],
            mention_all: false,
        }))
        .await
        .context("sending the sentinel")?;
    let Response::SendAck(_) = r else {
        bail!("expected SendAck for the sentinel, got {r:?}");
    };
    let last_ack = Instant::now();
    let m_fill1 = Mark::now(&target);
    wconn.close().await;
    sent += 1;
    bytes += (2 * sentinel.len() + 1) as u64;
    let fill_s = m_fill1.at.duration_since(m_fill0.at).as_secs_f64();

    // Catch-up: search for the sentinel until it is found.
    let catchup_until = catchup_until.min(last_ack + Duration::from_secs_f64(a.catchup_timeout));
    let mut polls = 0u64;
    let mut caught_up = None;
    let mut search_enabled = true;
    loop {
        let (_, r) = search_once(&mut sconn, &sentinel, a.limit).await?;
        polls += 1;
        match r {
            Ok((messages, _)) if !messages.is_empty() => {
                caught_up = Some(last_ack.elapsed());
                break;
            }
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::Forbidden => {
                search_enabled = false;
                break;
            }
            Err(e) => bail!("searching for the sentinel: {e}"),
        }
        if Instant::now() >= catchup_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after_catchup = target.sample();

    // Searches, one after another.
    let qs = if search_enabled && caught_up.is_some() {
        queries(&vocab, &counts, a.queries, a.seed)
    } else {
        Vec::new()
    };
    let mut all = histogram();
    let mut kinds: Vec<KindStats> = KINDS.iter().map(|_| KindStats::new()).collect();
    let (mut results, mut min_results, mut max_results) = (0u64, u64::MAX, 0u64);
    let (mut wrong, mut count_mismatches, mut out_of_order) = (0u64, 0u64, 0u64);
    let mut errors = 0u64;
    let mut problems = Vec::new();
    let progress = Progress::new("searching", qs.len() as u64);
    let m_q0 = Mark::now(&target);
    let mut done = 0u64;
    for q in &qs {
        if Instant::now() >= queries_until {
            break;
        }
        let (took, r) = search_once(&mut sconn, &q.text, a.limit).await?;
        done += 1;
        progress.set(done);
        let ns = took.as_nanos() as u64;
        all.saturating_record(ns);
        let ks = &mut kinds[KINDS.iter().position(|k| *k == q.kind).unwrap_or(0)];
        ks.latency.saturating_record(ns);
        ks.queries += 1;
        let (messages, has_more) = match r {
            Ok(ok) => ok,
            Err(e) => {
                errors += 1;
                if problems.len() < 5 {
                    problems.push(format!("{:?}: {e}", q.text));
                }
                continue;
            }
        };
        let n = messages.len() as u64;
        results += n;
        min_results = min_results.min(n);
        max_results = max_results.max(n);
        ks.results += n;
        ks.with_more += u64::from(has_more);
        ks.empty += u64::from(n == 0);
        let (w, bad_count, disorder, problem) =
            check_answer(q, &messages, has_more, a.limit, &ours);
        wrong += w;
        count_mismatches += u64::from(bad_count);
        out_of_order += u64::from(disorder);
        if let Some(p) = problem {
            if problems.len() < 5 {
                problems.push(p);
            }
        }
    }
    let m_q1 = Mark::now(&target);
    progress.finish();
    sconn.close().await;
    connector.shutdown().await;
    let queries_s = m_q1.at.duration_since(m_q0.at).as_secs_f64();

    let fill_complete = sent == a.messages;
    let searched = !search_enabled || (caught_up.is_some() && done > 0);
    let checks_ok = wrong == 0 && count_mismatches == 0 && out_of_order == 0 && errors == 0;
    let ok = fill_complete && searched && checks_ok;
    let mut fill_cpu = m_fill0.cpu_between(&m_fill1, sent);
    fill_cpu["note"] = json!("server_cpu_us_per_unit: per message written");
    let mut query_cpu = m_q0.cpu_between(&m_q1, done);
    query_cpu["note"] = json!("server_cpu_us_per_unit: per search");
    let by_kind: serde_json::Map<String, Value> = KINDS
        .iter()
        .zip(&kinds)
        .map(|(k, s)| (k.name().to_owned(), s.report()))
        .collect();
    let stats = target.stats().await;
    let report = json!({
        "scenario": "search",
        "ok": ok,
        "config": {
            "transport": c.transport.name(),
            "messages": a.messages,
            "conversations": a.conversations,
            "connections": k,
            "window": a.window,
            "queries": a.queries,
            "limit": a.limit,
            "seed": a.seed,
            "vocabulary_words": WORDS,
            "chinese_words": vocab.chinese.len(),
            "server_config": {
                "file": a.common.server_config.as_ref().map(|p| p.display().to_string()),
                "rate_limit_lifted": lifted.is_some(),
                "given_to_server": lifted.as_ref().map(|(_, _, text)| text.clone()),
            },
            "server_rate_limit_per_connection": announced,
            "max_seconds": a.max_seconds,
            "smoke": c.smoke,
        },
        "setup": {
            "accounts": k + 1,
            "register_s": round3(register_s),
            "create_groups_s": round3(create_s),
        },
        "fill": {
            "messages": sent,
            "stopped_by_time_bound": !fill_complete,
            "text_bytes_mean": round3(bytes as f64 / sent.max(1) as f64),
            "fill_s": round3(fill_s),
            "messages_per_s": round3(sent as f64 / fill_s.max(1e-9)),
            "cpu": fill_cpu,
        },
        "index": {
            "search_enabled": search_enabled,
            "caught_up": caught_up.is_some(),
            "catchup_after_last_ack_s": caught_up.map(|d| round3(d.as_secs_f64())),
            "sentinel_searches": polls,
            "server_rss_kib": after_catchup.map(|s| s.rss_kib),
            "disk": disk(&target, sent),
        },
        "search": {
            "queries": done,
            "stopped_by_time_bound": done < qs.len() as u64,
            "latency": summarize(&all),
            "queries_per_s": round3(done as f64 / queries_s.max(1e-9)),
            "results_per_query": {
                "mean": round3(results as f64 / done.max(1) as f64),
                "min": if done > 0 { min_results } else { 0 },
                "max": max_results,
            },
            "by_kind": by_kind,
            "cpu": query_cpu,
        },
        "check": {
            "ok": checks_ok,
            "results_not_matching": wrong,
            "wrong_counts": count_mismatches,
            "out_of_order": out_of_order,
            "errors": errors,
            "problems": problems,
        },
        "server_counters": stats,
        "machine": machine(),
    });
    target.stop().await?;
    drop(lifted);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_deterministic_and_within_bounds() {
        let v = Vocab::new();
        assert_eq!(v.words.len(), WORDS + ABSENT);
        assert_eq!(v.chinese.len(), CHINESE.len(), "duplicate Chinese words");
        let gen = |seed| {
            let mut rng = Rng::new(seed);
            let mut counts = Counts::new(&v);
            let mut s = Scratch::default();
            let texts: Vec<String> = (0..2000)
                .map(|_| v.message(&mut rng, &mut counts, &mut s))
                .collect();
            (texts, counts)
        };
        let (a, counts) = gen(7);
        let (b, _) = gen(7);
        assert_eq!(a, b);
        assert!(a.iter().all(|t| (MIN_TEXT..=MAX_TEXT).contains(&t.len())));
        let chinese = a
            .iter()
            .filter(|t| t.chars().any(|c| c > '\u{3000}'))
            .count();
        assert!(
            (300..700).contains(&chinese),
            "{chinese} of 2000 with Chinese"
        );
        // The counts agree with the tokenizer's view of the text.
        for w in [0, 1, 10, 2000] {
            let n = a.iter().filter(|t| tokens(t).contains(&v.words[w])).count() as u64;
            assert_eq!(n, counts.words[w], "word {w}");
        }
        assert!(counts.words[WORDS..].iter().all(|n| *n == 0));
        assert!(
            counts.words[0] > 1000,
            "the commonest word is in most messages"
        );
    }

    #[test]
    fn tokens_match_the_server() {
        assert_eq!(tokens("Hello, World! 42x"), ["hello", "world", "42x"]);
        assert_eq!(
            tokens("你好世界"),
            ["你", "好", "你好", "世", "好世", "界", "世界"]
        );
        assert_eq!(tokens("rust编程"), ["rust", "编", "程", "编程"]);
    }
}
