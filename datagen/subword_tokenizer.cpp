// SentencePiece training and line-by-line encoding (subword_tokenizer.h). Determinism:
// num_threads=1 (the unigram EM sums in thread order otherwise), input_sentence_size=0 and
// shuffle_input_sentence=false (every sentence, in the order given), and the library's
// global random seed set from the dataset seed before training.
#include "datagen/subword_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <mutex>

#include "datagen/config.h"
#include <stdexcept>
#include <unordered_map>

namespace moetb {
namespace {

class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::vector<const std::string*>& texts) : texts_(texts) { advance(); }
  bool done() const override { return text_ >= texts_.size(); }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }
  int64_t bytes() const { return bytes_; }

 private:
  void advance() {  // the next non-empty line of the texts, in order
    while (text_ < texts_.size()) {
      const std::string& t = *texts_[text_];
      if (pos_ >= t.size()) {
        ++text_, pos_ = 0;
        continue;
      }
      std::size_t end = t.find('\n', pos_);
      if (end == std::string::npos) end = t.size();
      line_.assign(t, pos_, end - pos_);
      pos_ = end + 1;
      if (!line_.empty()) {
        bytes_ += static_cast<int64_t>(line_.size());
        return;
      }
    }
  }
  const std::vector<const std::string*>& texts_;
  std::size_t text_ = 0, pos_ = 0;
  std::string line_;
  int64_t bytes_ = 0;
};

std::mutex& train_mutex() {  // the library's seed and log level are process-wide
  static std::mutex m;
  return m;
}

}  // namespace

void register_sentencepiece_tokenizer() {
  set_subword_trainer([](const std::vector<const std::string*>& texts, const DatagenConfig& cfg) -> std::unique_ptr<TextTokenizer> {
    SubwordTrainOptions opts;
    opts.vocab_size = cfg.subword_vocab_size;
    opts.model_type = cfg.subword_model_type;
    opts.character_coverage = cfg.subword_character_coverage;
    opts.seed = static_cast<uint64_t>(cfg.seed);
    return std::make_unique<SubwordTokenizer>(SubwordTokenizer::train(texts, opts));
  });
}

SubwordTokenizer::SubwordTokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
SubwordTokenizer::SubwordTokenizer(SubwordTokenizer&&) noexcept = default;
SubwordTokenizer& SubwordTokenizer::operator=(SubwordTokenizer&&) noexcept = default;
SubwordTokenizer::~SubwordTokenizer() = default;

SubwordTokenizer SubwordTokenizer::train(const std::vector<const std::string*>& texts, const SubwordTrainOptions& opts) {
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", opts.model_type},
      {"vocab_size", std::to_string(opts.vocab_size)},
      {"hard_vocab_limit", "false"},       // a small corpus gets fewer pieces, not an error
      {"character_coverage", std::to_string(opts.character_coverage)},
      {"num_threads", "1"},
      {"input_sentence_size", "0"},        // every sentence, no sampling
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", "65536"},    // paragraphs are single lines
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},  // indentation runs become pieces
      {"byte_fallback", "true"},           // lossless: rare characters become bytes
      {"unk_id", "0"},
      {"bos_id", "-1"},
      {"eos_id", "-1"},
      {"pad_id", "-1"},
      {"minloglevel", "2"},
  };
  SubwordTokenizer tok;
  LineIterator lines(texts);
  {
    std::lock_guard<std::mutex> lock(train_mutex());
    sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(opts.seed & 0xffffffffu));
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &tok.model_);
    if (!status.ok()) throw std::invalid_argument(std::string("tokenizer: sentencepiece training failed: ") + status.ToString());
  }
  tok.training_bytes_ = lines.bytes();
  const auto status = tok.sp_->LoadFromSerializedProto(tok.model_);
  if (!status.ok()) throw std::invalid_argument(std::string("tokenizer: sentencepiece model: ") + status.ToString());
  tok.n_pieces_ = tok.sp_->GetPieceSize();
  return tok;
}

SubwordTokenizer SubwordTokenizer::load(const std::string& serialized_model) {
  SubwordTokenizer tok;
  tok.model_ = serialized_model;
  const auto status = tok.sp_->LoadFromSerializedProto(tok.model_);
  if (!status.ok()) throw std::invalid_argument(std::string("tokenizer.model: not a sentencepiece model: ") + status.ToString());
  tok.n_pieces_ = tok.sp_->GetPieceSize();
  return tok;
}

std::vector<uint32_t> SubwordTokenizer::encode(const std::string& text) const {
  std::vector<uint32_t> out;
  std::vector<int> ids;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    const bool newline = end != std::string::npos;
    if (!newline) end = text.size();
    if (end > pos) {
      const auto status = sp_->Encode(std::string_view(text).substr(pos, end - pos), &ids);
      if (!status.ok()) throw std::runtime_error(std::string("tokenizer: sentencepiece encode: ") + status.ToString());
      for (int id : ids) out.push_back(static_cast<uint32_t>(id));
    }
    if (newline) out.push_back(newline_token());
    pos = end + 1;
  }
  return out;
}

std::string SubwordTokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::string out, part;
  std::vector<int> line;
  auto flush = [&] {
    if (line.empty()) return;
    const auto status = sp_->Decode(line, &part);
    if (!status.ok()) throw std::runtime_error(std::string("tokenizer: sentencepiece decode: ") + status.ToString());
    out += part;
    line.clear();
  };
  for (uint32_t id : ids) {
    if (id == newline_token()) {
      flush();
      out.push_back('\n');
    } else if (static_cast<int64_t>(id) < n_pieces_) {
      line.push_back(static_cast<int>(id));
    }
  }
  flush();
  return out;
}

std::string SubwordTokenizer::piece(uint32_t id) const {
  if (id == newline_token()) return "\n";
  return static_cast<int64_t>(id) < n_pieces_ ? sp_->IdToPiece(static_cast<int>(id)) : std::string();
}

}  // namespace moetb
