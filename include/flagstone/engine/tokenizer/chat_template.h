// Chat templates: the Jinja subset that tokenizer_config.json chat_template strings use (Llama 2,
// Llama 3, Mistral, Qwen2/2.5 and similar), parsed once and rendered per conversation.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace flagstone::engine {

namespace jinja {
struct Program;
}

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::string bos_token;  // exposed to the template as bos_token / eos_token
  std::string eos_token;
  // More template variables (tools, documents, date_string, ...); keys here override the above.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Parses `source` with transformers' settings (trim_blocks, lstrip_blocks). Throws
  // flagstone::Error (kFormat) naming `name`, line and column of a syntax error.
  explicit ChatTemplate(std::string_view source, std::string_view name = "chat_template");
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders a conversation: `messages` is a list of {"role": ..., "content": ...} objects (any
  // extra fields, e.g. tool_calls, are visible to the template). A raise_exception() in the
  // template, or an error while evaluating, throws flagstone::Error (kInvalidArgument) with the
  // template position.
  std::string render(const nlohmann::ordered_json& messages,
                     const ChatTemplateOptions& options) const;
  // Renders with an arbitrary variable set.
  std::string render_context(const nlohmann::ordered_json& context) const;

 private:
  std::unique_ptr<jinja::Program> program_;
};

}  // namespace flagstone::engine
