// Chat templates against Jinja2 configured as transformers configures it: the Llama 2, Llama 3,
// Mistral and Qwen2.5 templates on several conversations (including ones the templates reject),
// and feature templates covering the language subset. Fixture: tests/data/tokenizer/
// chat_templates.json (tools/fixtures/make_tokenizer_fixtures.py --part jinja).
#include "flagstone/engine/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "fixture_util.h"
#include "flagstone/base/error.h"

namespace flagstone::engine {
namespace {

using Json = nlohmann::ordered_json;

Json load_fixture() {
  std::ifstream in(test::tokenizer_data("chat_templates.json"));
  return Json::parse(in);
}

TEST(ChatTemplate, FamiliesMatchJinja2) {
  auto path = test::tokenizer_data("chat_templates.json");
  FS_REQUIRE_FIXTURE(path);
  Json fx = load_fixture();
  int checked = 0, rejected = 0;
  for (auto it = fx["families"].begin(); it != fx["families"].end(); ++it) {
    const Json& fam = it.value();
    ChatTemplate tmpl(fam["template"].get<std::string>(), it.key());
    for (std::size_t i = 0; i < fx["chats"].size(); ++i) {
      const Json& chat = fx["chats"][i];
      const Json& want = fam["renders"][i];
      ChatTemplateOptions opt;
      opt.add_generation_prompt = chat["add_generation_prompt"].get<bool>();
      opt.bos_token = fam["bos_token"];
      opt.eos_token = fam["eos_token"];
      if (chat.contains("tools")) opt.extra["tools"] = chat["tools"];
      SCOPED_TRACE(it.key() + " chat " + std::to_string(i));
      if (want.contains("error")) {
        // The template's raise_exception message must come through.
        std::string message = want["error"].get<std::string>();
        message = message.substr(message.find(": ") + 2);
        try {
          tmpl.render(chat["messages"], opt);
          ADD_FAILURE() << "expected the template to raise: " << message;
        } catch (const Error& e) {
          EXPECT_NE(e.message().find(message), std::string::npos) << e.message();
          EXPECT_NE(e.message().find(it.key() + ":1:"), std::string::npos) << e.message();
        }
        ++rejected;
      } else {
        EXPECT_EQ(tmpl.render(chat["messages"], opt), want["rendered"].get<std::string>());
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 15);
  EXPECT_GT(rejected, 3);
}

TEST(ChatTemplate, FeatureTemplatesMatchJinja2) {
  auto path = test::tokenizer_data("chat_templates.json");
  FS_REQUIRE_FIXTURE(path);
  Json fx = load_fixture();
  ASSERT_GE(fx["features"].size(), 8u);
  for (const Json& f : fx["features"]) {
    std::string src = f["template"];
    SCOPED_TRACE(src);
    try {
      ChatTemplate tmpl(src, "feature");
      EXPECT_EQ(tmpl.render_context(fx["feature_context"]), f["rendered"].get<std::string>());
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

TEST(ChatTemplate, SyntaxErrorsNameLineAndColumn) {
  try {
    ChatTemplate t("line one\n{% if x %}\n  {{ x + }}\n{% endif %}", "broken");
    FAIL() << "accepted a broken template";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kFormat);
    EXPECT_NE(e.message().find("broken:3:"), std::string::npos) << e.message();
  }
  EXPECT_THROW(ChatTemplate("{% for m in messages %}{{ m }}", "t"), Error);  // no endfor
  EXPECT_THROW(ChatTemplate("{{ 'unterminated }}", "t"), Error);
  EXPECT_THROW(ChatTemplate("{% macro f() %}{% endmacro %}", "t"), Error);  // unsupported tag
}

TEST(ChatTemplate, RuntimeErrorsNamePosition) {
  ChatTemplate t("ok\n{{ messages[0].content.missing.deeper }}", "rt");
  Json messages = Json::array({{{"role", "user"}, {"content", "x"}}});
  try {
    t.render(messages, {});
    FAIL() << "attribute of undefined accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidArgument);
    EXPECT_NE(e.message().find("rt:2:"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("missing"), std::string::npos) << e.message();
  }
  ChatTemplate add("{{ 1 + 'a' }}", "add");
  EXPECT_THROW(add.render_context(Json::object()), Error);
  EXPECT_THROW(add.render(Json::object(), {}), Error);  // messages must be a list
}

}  // namespace
}  // namespace flagstone::engine
