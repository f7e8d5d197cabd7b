// ChatTemplate: the public face of the Jinja parser and interpreter.
#include "flagstone/engine/tokenizer/chat_template.h"

#include "flagstone/base/error.h"
#include "jinja_ast.h"
#include "jinja_interp.h"

namespace flagstone::engine {

ChatTemplate::ChatTemplate(std::string_view source, std::string_view name)
    : program_(jinja::parse_template(source, name)) {}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::ordered_json& messages,
                                 const ChatTemplateOptions& options) const {
  FS_CHECK(messages.is_array(), kInvalidArgument, "chat template ", program_->name,
           ": messages must be a JSON array of {role, content} objects");
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  context["add_generation_prompt"] = options.add_generation_prompt;
  context["bos_token"] = options.bos_token;
  context["eos_token"] = options.eos_token;
  // transformers always passes these, as None when absent; "tools is not none" depends on it.
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  if (options.extra.is_object())
    for (auto it = options.extra.begin(); it != options.extra.end(); ++it)
      context[it.key()] = it.value();
  return render_context(context);
}

std::string ChatTemplate::render_context(const nlohmann::ordered_json& context) const {
  FS_CHECK(context.is_object(), kInvalidArgument, "chat template ", program_->name,
           ": the context must be a JSON object");
  return jinja::render(*program_, context);
}

}  // namespace flagstone::engine
