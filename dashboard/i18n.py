"""Chinese and English interface: a small translation table and the reader's choice.

The language is kept in a cookie set by ``/lang/<code>`` (a plain link in the top bar),
so page layouts and callbacks built on the server see it in every request::

    t("Schools", "zh") == "学校"
    t("no such text", "zh") == "no such text"      # untranslated text falls back to English

Room, school and device names come from the BIM as they are (often Chinese already).
"""

from __future__ import annotations

import flask

LANGUAGES = ("en", "zh")
DEFAULT = "en"
COOKIE = "campus_twin_lang"

#: English -> Chinese. Keys are the English text itself, so a missing entry shows English.
ZH: dict[str, str] = {
    # navigation
    "Network": "网络总览", "Alarms": "告警", "Devices": "设备", "BIM": "BIM 模型",
    "live digital twin of the school network": "集团学校实时数字孪生",
    # overview
    "Schools": "学校", "School": "学校", "headquarters": "总校", "member": "分校",
    "rooms": "房间", "devices": "设备", "online": "在线", "open alarms": "未关闭告警",
    "devices online": "设备在线率", "IoT coverage": "物联感知覆盖率", "smart-lighting coverage": "智慧照明覆盖率",
    "interactive-panel coverage": "交互大屏覆盖率", "lighting compliance": "照明达标率",
    "data completeness": "数据完整率", "cleared": "恢复时间", "target": "目标", "Network map": "集团分布图",
    "Cloud classes in progress": "进行中的云课堂", "No cloud class in progress.": "当前没有进行中的云课堂。",
    "main classroom": "主讲课堂", "auxiliary classrooms": "听课课堂", "session": "课堂编号",
    "No schools yet: load a BIM model first.": "还没有学校：请先导入 BIM 模型。", "whole network": "全集团",
    "Click a school to open it.": "点击学校进入。", "longitude °E": "东经 °", "latitude °N": "北纬 °",
    # panel
    "off": "关", "standby": "待机", "on": "开", "none": "无", "built-in PC": "内置电脑", "HDMI": "HDMI",
    "cloud-class stream": "云课堂直播", "panel": "大屏",
    # site / floor plan
    "Unknown school": "未知学校", "All schools": "全部学校", "no storeys": "没有楼层", "Storey": "楼层",
    "Metric": "指标", "3D view of this building": "该楼栋的三维视图", "Floor plan": "平面图",
    "no room footprints on this storey": "该楼层没有房间轮廓", "no data": "无数据",
    "Click a room to open it.": "点击房间查看详情。", "device": "设备",
    # metrics
    "temperature": "温度", "co2": "二氧化碳", "illuminance": "课桌照度", "occupancy": "人数", "humidity": "湿度",
    "noise": "噪声", "pm25": "PM2.5", "compliance": "标准达标", "device_health": "设备健康",
    "blackboard_illuminance": "黑板照度", "power": "功率", "dimming": "调光", "tvoc": "TVOC",
    "panel_state": "大屏状态", "screen_on": "屏幕", "input_source": "信号源", "cloud_session": "云课堂",
    "cloud_role": "云课堂角色", "energy": "电能", "panel_temperature": "大屏温度",
    # bands
    "outside 22–28 °C": "超出 22–28 °C", "outside 40–80 %RH": "超出 40–80 %RH", "empty": "无人", "occupied": "有人",
    "meets the standards": "符合标准", "marginal": "临界", "fails a standard": "不达标", "all online": "全部在线",
    "some offline": "部分离线", "mostly offline": "多数离线", "value": "数值",
    "outside": "超出", "outside a standard": "超出标准", "no standard": "无适用标准", "summer": "夏季", "winter": "冬季",
    "classroom": "教室", "lab": "实验室", "office": "办公室", "corridor": "走廊",
    # building
    "Unknown building": "未知楼栋", "3D view": "三维视图",
    # room
    "Unknown room": "未知房间", "Live values": "实时数值", "History": "历史曲线", "No live values yet.": "暂无实时数值。",
    "kind": "类型", "metric": "指标", "time": "时间", "state": "状态", "last seen": "最后上报", "battery": "电量",
    "signal": "信号", "firmware": "固件", "Devices in this room": "房间内设备", "never": "从未",
    "Lighting control": "照明控制", "all luminaires": "全部灯具", "Dim": "调光", "On": "开灯", "Off": "关灯",
    "level": "亮度", "Recent commands": "最近指令", "action": "动作", "sent": "发送时间", "acknowledged": "已确认",
    "waiting for ack": "等待确认", "failed": "失败", "ok": "成功",
    "Commands need an MQTT broker (start the dashboard with --mqtt-url).": "发送指令需要 MQTT 服务器（用 --mqtt-url 启动）。",
    "No luminaires in this room.": "房间内没有灯具。", "Download CSV": "下载 CSV", "1 h": "1 小时",
    "24 h": "24 小时", "7 d": "7 天", "30 d": "30 天", "custom": "自定义", "no data in this period": "该时段无数据",
    "mean": "平均", "min–max": "最小–最大", "from 1-minute rollups": "来自 1 分钟汇总", "from 1-hour rollups": "来自 1 小时汇总",
    "command sent": "指令已发送", "command not sent": "指令未发送",
    # alarms
    "severity": "级别", "any": "全部", "info": "提示", "warning": "警告", "critical": "严重", "open": "未处理",
    "closed": "已关闭", "rule": "规则", "message": "内容", "raised": "发生时间", "known": "获知时间", "room": "房间", "note": "备注",
    "Acknowledge": "确认", "Note for the acknowledgement": "确认备注", "No alarms match.": "没有符合条件的告警。",
    "acknowledged by": "确认人", "Alarm acknowledged.": "告警已确认。", "Alarm was not open.": "告警不是未处理状态。",
    # devices
    "offline": "离线", "unknown": "未知", "Unmapped devices": "未映射设备",
    "Publishing but not in the BIM": "在上报但不在 BIM 中", "In the BIM but never heard": "在 BIM 中但从未上报",
    "In the BIM but in no room": "在 BIM 中但不在任何房间", "messages": "消息数", "first seen": "首次出现",
    "None.": "无。", "showing": "显示", "of": "共",
    # bim
    "Upload an IFC revision": "上传 IFC 模型修订版", "Site id": "学校编号", "Site name (optional)": "学校名称（可选）",
    "Role": "角色", "Drag an IFC file here or click to choose": "将 IFC 文件拖到此处，或点击选择",
    "Import summary": "导入摘要", "Revision diff": "修订差异", "first import of this site": "该学校首次导入",
    "no changes": "无变化", "added": "新增", "removed": "删除", "changed": "修改", "buildings": "楼栋",
    "storeys": "楼层", "Recent imports": "最近导入",
    "The twin as Brick": "孪生模型导出为 Brick", "Download the network as Brick (Turtle)": "下载全网 Brick 模型 (Turtle)",
    "(one school: ?site=ID)": "(单所学校: ?site=ID)", "file": "文件", "imported": "导入时间",
    "Uploads are disabled: no BIM loader (start with campus-twin dashboard).":
        "上传不可用：未配置 BIM 导入（请用 campus-twin dashboard 启动）。",
    "Import failed": "导入失败", "file too large": "文件过大", "rooms without geometry": "无几何的房间",
    "devices by kind": "按类型统计设备", "devices by mapping": "按映射方式统计设备", "schema": "IFC 版本",
    "site": "学校", "unmapped devices": "未映射设备", "maximum size": "最大文件",
    # login and roles
    "Log in": "登录", "Log out": "退出", "Username": "用户名", "Password": "密码",
    "Wrong username or password.": "用户名或密码错误。", "The form expired; please try again.": "表单已过期，请重试。",
    "Too many failed logins; wait a few minutes.": "登录失败次数过多，请稍后再试。",
    "Another login from this address is being checked; try again in a moment.":
        "来自此地址的另一次登录正在校验，请稍后再试。",
    "viewer": "只读", "operator": "运维", "planner": "规划", "admin": "管理员",
    "Only planners and admins may upload.": "只有规划人员和管理员可以上传。",
    "Only operators and admins may send commands.": "只有运维人员和管理员可以发送指令。",
    # BIM plan (dashboard/pages/bim.py)
    "Plan": "导入计划", "Nothing has been applied yet.": "尚未导入任何内容。",
    "Apply this revision": "导入此版本", "Apply, including the removals": "导入（包括删除）", "Discard": "放弃",
    "This revision removes more than the threshold": "此版本删除的内容超过阈值",
    "applying it removes them from the twin (their history is kept)": "导入后将从孪生模型中移除（历史数据保留）",
    "Discarded: nothing was applied.": "已放弃：未导入任何内容。", "Apply failed": "导入失败",
    "planned by": "上传者", "In the file": "文件内容", "Applied": "已导入", "import": "导入记录",
}


def t(text: str, lang: str | None = None) -> str:
    """``text`` in ``lang`` (the current request's language when None)."""
    lang = lang or current()
    return ZH.get(text, text) if lang == "zh" else text


def current() -> str:
    """The language of the current request (cookie), else the default; works outside requests."""
    if not flask.has_request_context():
        return DEFAULT
    value = flask.request.cookies.get(COOKIE, DEFAULT)
    return value if value in LANGUAGES else DEFAULT


def register(server: flask.Flask, prefix: str = "/") -> None:
    """Add ``/lang/<code>``: remember the language in a cookie and go back where the reader was (``?next=``,
    else the Referer), a page of this app only (the login page links here before anyone has logged in)."""
    from dashboard.paths import safe_local_path, same_site_path

    def switch(code: str) -> flask.Response:
        request = flask.request
        wanted = request.args.get("next")
        target = (safe_local_path(wanted, prefix) if wanted is not None
                  else same_site_path(request.referrer, request.host, prefix))
        response = flask.redirect(target)
        if code in LANGUAGES:
            response.set_cookie(COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax")
        return response

    server.add_url_rule(f"{prefix.rstrip('/')}/lang/<code>", "campus_twin_lang", switch)

# room page (issue 18): summary, states as words, the chart around a time
ZH.update({
    "Summary": "概况", "not in session": "非上课时段", "meets the standard": "达标", "outside the standard": "超出标准",
    "fails the standard": "不达标", "{on} of {n} on": "{n} 盏中 {on} 盏开", "persons": "人",
    "Not in session: the standards judge this room in lessons.": "非上课时段：标准在上课时评判本房间。",
    "No standard judges these values.": "没有适用于这些数值的标准。", "The room meets the standards.": "本房间符合标准。",
    "A value is outside a standard.": "有数值超出标准。", "A value fails a standard.": "有数值不达标。",
    "CO₂": "二氧化碳", "desk illuminance": "课桌照度", "blackboard illuminance": "黑板照度", "luminaires": "灯具",
    "panel screen": "大屏屏幕", "input source": "信号源", "cloud class": "云课堂", "cloud-class role": "云课堂角色",
    "panel temperature": "大屏温度", "auxiliary classroom": "听课课堂", "no data in this range": "该时段无数据",
    "around {time}": "{time} 前后", "Show that range": "显示该时段", "Last data: {time}.": "最后数据：{time}。",
    "Raw values of every device": "各设备原始数值", "env_sensor": "环境传感器", "luminaire": "灯具",
    "blackboard_luminaire": "黑板灯", "blackboard_sensor": "黑板照度传感器", "dim": "调光",
})

# devices page (issue 18): search, sort, paging
ZH.update({
    "Search": "搜索", "device, room, building or kind": "设备、房间、楼栋或类型", "Sort by": "排序", "Order": "顺序",
    "ascending": "升序", "descending": "降序", "{first}–{last} of {total}": "第 {first}–{last} 条，共 {total} 条",
    "No devices match.": "没有符合条件的设备。", "search to narrow the list": "可用搜索缩小范围",
    "appliance": "电器", "outlet": "插座",
})

# site floor plan (issue 18): device legend, storey pickers
ZH.update({
    "sensor": "传感器", "luminaire": "灯具", "blackboard luminaire": "黑板灯", "interactive panel": "交互大屏",
    "Device markers": "设备标记", "Building": "楼栋",
    "Click anywhere in a room to open it; hover it for its values.": "点击房间任意位置查看详情；悬停查看数值。",
})

# network overview (issue 18): the ranking, the school x KPI matrix, what "–" means, the map
ZH.update({
    "{n} critical alarm": "{n} 条严重告警", "{n} critical alarms": "{n} 条严重告警",
    "{n} device offline": "{n} 台设备离线", "{n} devices offline": "{n} 台设备离线",
    "{n} warning": "{n} 条警告", "{n} warnings": "{n} 条警告",
    "{n} device without status": "{n} 台设备无状态", "{n} devices without status": "{n} 台设备无状态",
    "{n} info alarm": "{n} 条提示", "{n} info alarms": "{n} 条提示", "all fine": "一切正常", "{n} more": "另有 {n} 项",
    "no devices": "没有设备", "no devices in this site's BIM model": "该学校的 BIM 模型中没有设备",
    "no classrooms or labs": "没有教室或实验室",
    "no classroom or lab in the BIM model: nothing to cover": "BIM 模型中没有教室或实验室：无可覆盖对象",
    "no classrooms": "没有教室", "no classroom in the BIM model: nothing to cover": "BIM 模型中没有教室：无可覆盖对象",
    "not computed yet": "尚未计算",
    "not computed yet: the monitor (campus-twin monitor) computes it every cycle and stores it per day":
        "尚未计算：监测服务（campus-twin monitor）每个周期计算并按天保存",
    "no lesson measured": "无上课时段测量",
    "no classroom measured during a lesson on {day}: needs desk illuminance readings from a classroom during a "
    "lesson of a school day": "{day} 没有教室在上课时段被测量：需要上学日上课时段教室的课桌照度数据",
    "no device expected": "无应上报设备", "no device that sends telemetry was expected on {day}": "{day} 没有应上报数据的设备",
    "no data": "无数据",
    "sites with devices": "有设备的学校", "devices whose last status is online, of all devices": "最后状态为在线的设备占全部设备",
    "alarms not closed, by severity": "未关闭的告警，按级别",
    "classrooms and labs with an environment sensor reporting (15 min)": "有环境传感器在上报（15 分钟内）的教室和实验室",
    "classrooms whose luminaires all report (15 min)": "灯具全部在上报（15 分钟内）的教室",
    "classrooms with an interactive panel reporting (15 min)": "有交互大屏在上报（15 分钟内）的教室",
    "classrooms meeting GB 7793 in lessons, of those measured": "上课时段符合 GB 7793 的教室占已测教室",
    "messages received of those expected": "已收到消息占应收消息",
    "{n} site without devices": "{n} 个站点没有设备", "{n} sites without devices": "{n} 个站点没有设备",
    "not counted as schools": "不计为学校", "at target (100%)": "达到目标（100%）", "within 10 points below": "低于目标 10 个百分点以内",
    "further below": "低于目标更多", "– no value: the cell says why": "– 无数值：单元格注明原因",
    "Outside the map": "不在地图范围内", "{km} km from the network": "距集团 {km} 公里",
    "No coordinates in the BIM model": "BIM 模型中没有坐标", "Needs attention": "需要关注",
    "Ranked by critical alarms, then devices offline, warnings, KPIs below target, devices without status, info alarms.":
        "排序依据：严重告警，其次离线设备、警告、未达标指标、无状态设备、提示。",
    "Numbers are the ranking; names on hover. Click a school to open it.": "编号即排名；悬停显示名称。点击学校进入。",
    "Schools × KPIs": "学校 × 指标", "as of": "数据时间",
})

# alarms page (issue 18): building, several acknowledged at once
ZH.update({
    "building": "楼栋", "Acknowledge selected": "确认所选",
    "Notifications not delivered": "未送达的通知", "channel": "渠道", "event": "事件", "attempts": "尝试次数",
    "next attempt": "下次重试", "reason": "原因", "{n} alarms acknowledged.": "已确认 {n} 条告警。",
})

# top frame (issue 18, demo): the schools' local time and whether they are in session
ZH.update({
    "schools' local time": "学校当地时间", "in session": "上课中", "not in session": "非上课时间",
    "demo timetable shifted by {shift}": "演示课表已平移 {shift}",
})

# the twin's vocabularies shown through t(variable) (tests/test_i18n_complete.py)
ZH.update({
    "switch": "开关", "controller": "控制器", "other": "其他", "toilet": "卫生间", "stair": "楼梯间",
})

# devices page (issue 19): hardware adapters saw that no device carries, bound by a planner
ZH.update({
    "Publishing but not in the twin": "在上报但不在孪生中", "adapter": "适配器", "hardware id": "硬件标识",
    "hardware ids": "硬件标识", "address": "寻址名", "model": "型号", "Bind": "绑定", "choose a device": "选择设备",
    "suggested": "建议", "has a {kind} id": "已有 {kind} 标识",
    "Hardware an adapter heard that no device of the twin carries.": "适配器收到了这些硬件的消息，但孪生中没有设备带有其标识。",
    "Choose its device and press Bind.": "选择对应设备并点击“绑定”。",
    "A planner binds it to its device.": "由规划人员将其绑定到对应设备。",
    "Bound {hardware} to {device}.": "已将 {hardware} 绑定到 {device}。", "Not bound: {problems}": "未绑定：{problems}",
    "Choose the device to bind {hardware} to.": "请选择要绑定 {hardware} 的设备。",
})

# metrics of issue 19's adapters (tests/test_i18n_complete.py: every metric has its Chinese)
ZH.update({"presence": "有人感应", "link_quality": "链路质量"})
