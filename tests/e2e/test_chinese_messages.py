"""Chinese messages over real HTTP on the local stack: seed 001's own JavaScript (its client class and its
error-handling example, run by node) takes the 积分不足 branch when the browser asks for zh-CN, and the
`aigc` CLI shows the server's Chinese message under LANG=zh_CN.UTF-8."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from aigc.providers.error_messages import user_message
from tests.e2e.conftest import ROOT, new_user

NODE = shutil.which("node")

# Seed 001, section "JavaScript 示例": the client class as published (its other methods left out).
SEED_001_CLIENT = r'''
class SuChuangImageGenerator {
  constructor(token, baseUrl = "http://localhost:8081") {
    this.token = token;
    this.baseUrl = baseUrl;
  }

  // 提交文生图任务
  async generateImage(prompt, aspectRatio = "1:1") {
    const modelMap = {
      "auto": "sc_soraimg_text_auto",
      "1:1": "sc_soraimg_text_1x1",
      "2:3": "sc_soraimg_text_2x3",
      "3:2": "sc_soraimg_text_3x2"
    };
    const response = await fetch(`${this.baseUrl}/user/ai/tasks/submit`, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        "Authorization": `Bearer ${this.token}`
      },
      body: JSON.stringify({
        modelName: modelMap[aspectRatio],
        prompt: prompt
      })
    });
    const result = await response.json();
    if (result.code === 200) {
      return result.data.taskNo;
    }
    throw new Error(result.message);
  }

  // 查询任务状态
  async getTaskStatus(taskNo) {
    const response = await fetch(`${this.baseUrl}/user/ai/tasks/${taskNo}`, {
      headers: {
        "Authorization": `Bearer ${this.token}`
      }
    });
    const result = await response.json();
    if (result.code === 200) {
      return result.data;
    }
    throw new Error(result.message);
  }

  // 等待任务完成(带超时)
  async waitForCompletion(taskNo, timeout = 180000) {
    const startTime = Date.now();
    return new Promise((resolve, reject) => {
      const interval = setInterval(async () => {
        try {
          const task = await this.getTaskStatus(taskNo);
          if (task.status === 'completed') {
            clearInterval(interval);
            resolve(task.resultUrl);
          } else if (task.status === 'failed') {
            clearInterval(interval);
            reject(new Error(task.errorMessage || '任务失败'));
          } else if (Date.now() - startTime > timeout) {
            clearInterval(interval);
            reject(new Error('任务超时'));
          }
        } catch (error) {
          clearInterval(interval);
          reject(error);
        }
      }, 5000);
    });
  }
}
'''

# Seed 001, "错误处理示例", as published (inside an async function: the seed shows the body).
SEED_001_ERROR_HANDLING = r'''
async function example(generator) {
  try {
    const taskNo = await generator.generateImage("测试prompt", "1:1");
    const imageUrl = await generator.waitForCompletion(taskNo);
    console.log("成功:", imageUrl);
  } catch (error) {
    if (error.message.includes("积分不足")) {
      console.error("请先充值积分");
      // 跳转到充值页面
    } else if (error.message.includes("未登录")) {
      console.error("请先登录");
      // 跳转到登录页面
    } else {
      console.error("生成失败:", error.message);
    }
  }
}
'''

# What a browser does for its user: every request carries the user's languages (a zh-CN browser sends
# "zh-CN,zh;q=0.9,en;q=0.8"). Node's fetch sends "Accept-Language: *" unless told otherwise.
BROWSER = r'''
const languages = process.env.BROWSER_LANGUAGES;
if (languages) {
  const send = globalThis.fetch;
  globalThis.fetch = (url, init = {}) => send(url, {...init, headers: {...(init.headers || {}), "Accept-Language": languages}});
}
example(new SuChuangImageGenerator(process.env.TOKEN, process.env.BASE_URL));
'''


def _run_seed_example(tmp_path, stack, token: str, languages: str | None) -> subprocess.CompletedProcess:
    script = tmp_path / "seed_001_error_handling.js"
    script.write_text(SEED_001_CLIENT + SEED_001_ERROR_HANDLING + BROWSER, encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "TOKEN": token, "BASE_URL": stack.url}
    if languages:
        env["BROWSER_LANGUAGES"] = languages
    return subprocess.run([NODE, str(script)], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(NODE is None, reason="node is not installed (seed 001's example is JavaScript)")
def test_seed_001_javascript_takes_the_jifen_buzu_branch_for_a_chinese_browser(stack, tmp_path):
    user = new_user("zh")
    stack.grant(user, 10)  # sc_soraimg_text_1x1 costs 30
    chinese = _run_seed_example(tmp_path, stack, stack.token(user), "zh-CN,zh;q=0.9,en;q=0.8")
    assert chinese.returncode == 0, chinese.stderr
    assert chinese.stderr.strip() == "请先充值积分", chinese.stderr

    # the same request from an English browser (or none: node's "*"): the message is English, the seed's
    # generic branch shows it
    for languages in ("en-US,en;q=0.9", None):
        english = _run_seed_example(tmp_path, stack, stack.token(user), languages)
        assert english.stderr.startswith("生成失败: not enough points: this task costs 30, your balance is 10"), \
            english.stderr
    assert stack.balance(user) == 10 and stack.task_count(user) == 0  # refused, nothing changed


@pytest.mark.skipif(NODE is None, reason="node is not installed (seed 001's example is JavaScript)")
def test_seed_001_javascript_shows_a_failed_tasks_chinese_error_message(stack, tmp_path):
    """The task fails at the provider (seed 003's code): waitForCompletion rejects with the task's
    errorMessage, which the Chinese browser reads in Chinese (seed 003's text)."""
    user = new_user("zh")
    stack.grant(user, 100)
    script = tmp_path / "failed.js"
    script.write_text(SEED_001_CLIENT + r'''
const send = globalThis.fetch;
globalThis.fetch = (url, init = {}) => send(url, {...init, headers: {...(init.headers || {}), "Accept-Language": "zh-CN"}});
const generator = new SuChuangImageGenerator(process.env.TOKEN, process.env.BASE_URL);
generator.generateImage("一只可爱的柴犬 [sim:fail=DataInspectionFailed,seconds=0.5]", "1:1")
  .then(taskNo => generator.waitForCompletion(taskNo))
  .then(imageUrl => console.log(`图片生成完成: ${imageUrl}`))
  .catch(error => console.error(`生成失败: ${error.message}`));
''', encoding="utf-8")
    result = subprocess.run([NODE, str(script)], env={"PATH": os.environ.get("PATH", ""), "TOKEN": stack.token(user),
                                                      "BASE_URL": stack.url},
                            capture_output=True, text=True, timeout=60)
    [task] = stack.call("GET", "/user/ai/tasks/list", user=user).json()["data"]["records"]
    assert task["status"] == "failed" and task["refunded"], task
    assert task["errorMessage"] == user_message(task["errorCode"])  # English for an English reader
    assert result.stderr.strip() == f"生成失败: {user_message(task['errorCode']).render('zh-CN')}", result.stderr
    assert "请修改后重试" in result.stderr


def test_raw_http_negotiation_and_content_language(stack):
    user = new_user("zh")
    stack.grant(user, 10)
    for header, language, words in [("zh-CN", "zh-CN", "积分不足"), ("zh;q=0.8, en;q=0.9", "en", "not enough points"),
                                     ("fr, zh;q=0.5", "zh-CN", "积分不足"), ("zh-TW", "en", "not enough points")]:
        response = stack.submit(user, headers={"Accept-Language": header}, modelName="sc_soraimg_text_1x1",
                                prompt="cat")
        assert response.status_code == 402, response.text
        assert response.headers["Content-Language"] == language
        body = response.json()
        assert words in body["message"] and body["code"] == 402 and body["errorCode"] == "InsufficientPoints"
    ok = stack.call("GET", "/user/points/consumption/balance", user=user, headers={"Accept-Language": "zh"})
    assert ok.headers["Content-Language"] == "zh-CN" and ok.json()["message"] == "success"  # seed 001's token


def test_the_cli_follows_lang(stack):
    user = new_user("zh")
    stack.grant(user, 10)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGC_", "LC_", "LANG"))}
    env.update(PYTHONPATH=str(ROOT / "clients" / "python" / "src"), AIGC_BASE_URL=stack.url, NO_COLOR="1",
               AIGC_TOKEN=stack.token(user))

    def aigc(*args, **more):
        return subprocess.run([sys.executable, "-m", "aigc_client", *args], env={**env, **more},
                              capture_output=True, text=True, timeout=60)

    chinese = aigc("submit", "sc_soraimg_text_1x1", "--prompt", "cat", LANG="zh_CN.UTF-8")
    assert chinese.returncode == 3, chinese.stderr
    assert chinese.stderr.startswith("error: 积分不足：此任务需要 30 积分，您的余额为 10"), chinese.stderr
    english = aigc("submit", "sc_soraimg_text_1x1", "--prompt", "cat", LANG="C.UTF-8")
    assert english.stderr.startswith("error: not enough points: this task costs 30, your balance is 10"), english.stderr
    forced = aigc("--language", "zh-CN", "--json", "submit", "sc_soraimg_text_1x1", "--prompt", "cat")
    assert "积分不足" in forced.stderr
    bad = aigc("submit", "wanx-v1", "--prompt", "cat", "--param", "n=9", LANG="zh_CN.UTF-8")
    assert bad.returncode == 2 and "parameters.n：输入应小于或等于 4" in bad.stderr, bad.stderr
    assert json.loads(aigc("--json", "balance", LANG="zh_CN.UTF-8").stdout)["balance"] == 10
