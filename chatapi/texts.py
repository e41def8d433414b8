"""Every user-facing text, Chinese and English side by side (docs/API.md §1). Which of the two is
the caller's to say: the API layer decides a request's language (chatapi/language.py) and
passes it down to whatever writes text, so a text reads the same in a request and in a
stream's reader greenlet."""

LANGUAGES = ("zh", "en")  # the order of each row below
DEFAULT_LANGUAGE = "zh"

TEXTS = {
    # success messages
    "registered": ("注册成功", "Registered"),
    "logged_in": ("登录成功", "Logged in"),
    "logged_out": ("登出成功", "Logged out"),
    "token_refreshed": ("令牌已刷新", "Token refreshed"),
    "password_changed": ("密码修改成功", "Password changed"),
    "account_deleted": ("账号已删除", "Account deleted"),
    "conversation_created": ("会话创建成功", "Conversation created"),
    "conversation_updated": ("会话更新成功", "Conversation updated"),
    "conversation_deleted": ("会话删除成功", "Conversation deleted"),
    "message_deleted": ("消息删除成功", "Message deleted"),
    "conversations_imported": ("导入成功", "Imported"),
    "answer_stopped": ("回答已停止", "Answer stopped"),
    # one default text per error code
    "bad_request": ("请求体不是有效的 JSON 对象", "The request body is not a valid JSON object"),
    "unauthorized": ("未登录或令牌无效", "Missing or invalid token"),
    "forbidden": ("无权执行此操作", "You are not allowed to do this"),
    "not_found": ("资源不存在", "Not found"),
    "method_not_allowed": ("不支持该请求方法", "Method not allowed"),
    "conflict": ("资源冲突", "Conflict"),
    "payload_too_large": ("请求体过大", "Request body too large"),
    "uri_too_long": ("请求的网址过长", "Request URL too long"),
    "header_fields_too_large": ("请求头过大", "Request header fields too large"),
    "validation_error": ("参数校验失败", "Validation failed"),
    "rate_limited": ("请求过于频繁，请稍后再试", "Too many requests, try again later"),
    "internal_error": ("服务器内部错误", "Internal server error"),
    "not_implemented": ("服务器不支持该请求", "The server does not support this request"),
    "upstream_error": ("上游服务出错", "The upstream service failed"),
    "upstream_unavailable": ("上游服务不可用", "The upstream service is unavailable"),
    "upstream_timeout": ("上游服务超时", "The upstream service timed out"),
    # specific errors
    "malformed_request": ("HTTP 请求格式错误", "Malformed HTTP request"),
    "invalid_credentials": ("用户名或密码错误", "Wrong username or password"),
    "wrong_password": ("密码错误", "Wrong password"),
    "password_unchanged": ("新密码不能与当前密码相同",
                           "The new password must differ from the current one"),
    "token_expired": ("令牌已过期", "Token has expired"),
    "token_revoked": ("令牌已被撤销", "Token has been revoked"),
    "account_inactive": ("账号已停用", "This account is deactivated"),
    "username_taken": ("用户名已被占用", "Username is already taken"),
    "email_taken": ("邮箱已被占用", "Email is already taken"),
    "invalid_refresh_token": ("refresh_token 无效", "Invalid refresh_token"),
    "too_many_answers": ("同时进行中的回答过多，请等待当前回答结束",
                         "Too many answers in progress; wait for one to finish"),
    "database_unavailable": ("数据库不可用", "The database is unavailable"),
    "import_too_many_messages": ("导入的文件消息过多", "Too many messages in the imported file"),
    "import_too_many_tool_values": ("导入的文件中工具调用的数据过多",
                                    "Too much data in the imported file's tool calls"),
    "import_invalid": ("导入的文件有误", "The imported file is not valid"),
    "quota_exceeded": ("令牌额度已用完，请等待额度重置", "Token quota used up; wait until it resets"),
    "import_busy": ("另一个导入正在进行，请稍后重试", "Another import is running; try again shortly"),
    "answer_interrupted": ("回答被中断：处理它的服务进程已停止",
                           "The answer was interrupted: the process writing it stopped"),
    "too_many_tool_calls": ("本轮工具调用次数超过上限，此调用未执行",
                            "Too many tool calls in one round: this one was not run"),
    "computation_timeout": ("工具计算超时，已被终止",
                            "The tool's computation took too long and was stopped"),
    "computation_per_user": ("你的工具计算已在进行中，请等它结束再试",
                             "Your other tool computations are still running; try again shortly"),
    "computation_busy": ("工具计算繁忙，请稍后再试",
                         "Too many tool computations are running; try again shortly"),
    "city_not_found": ("未找到该城市", "City not found"),
    "url_refused": ("该网址指向不允许访问的地址", "The URL points to an address that may not be fetched"),
    "url_invalid": ("网址无效，只支持 http 和 https", "Invalid URL: only http and https are supported"),
    "too_many_redirects": ("重定向次数过多", "Too many redirects"),
    "binary_content": ("该网址返回的是二进制内容，无法作为文本读取",
                       "The URL returned binary content, which cannot be read as text"),
    "invalid_username": (
        "用户名只能包含字母、数字、下划线、连字符和点，长度 3–32",
        "Username must be 3–32 letters, digits, _ - or ."),
    "sandbox_isolation_unavailable": (
        "代码沙箱在本机不可用（需要 bubblewrap、以 root 运行并允许用户命名空间）",
        "The code sandbox is unavailable on this host (it needs bubblewrap, the service running "
        "as root and user namespaces allowed)"),
    "sandbox_busy": ("代码沙箱的所有运行槽位都在使用中，请稍后再试",
                     "Every slot of the code sandbox is in use; try again shortly"),
}


def say(key, language):
    zh, en = TEXTS[key]
    return en if language == "en" else zh
