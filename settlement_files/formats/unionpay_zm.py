"""UnionPay 全渠道 merchant reconciliation file, ZM (`INN<yymmdd>88ZM_<merId>`).

Source: UnionPay's Java SDK demo `DemoBase.parseZMFile` ("版权：中国银联",
copy in github.com/baifuhai/alipay unionpay/src/main/java/com/unionpay/acp/
demo/DemoBase.java), citing 《全渠道平台接入接口规范 第3部分 文件接口》 §6.1;
field names from github.com/lyonliyang/demo (UnionField); the year of the
MMDDhhmmss time from the statement date as github.com/dromara/dax-pay does.
42 fields counted in GBK bytes, one separator byte after each, no header;
amounts in fen; fee and net as D/C + 12 digits.  SPEC §7.9.4.
"""

import re

from daozhang.settlement_files.formats._unionpay import fixed_tables, record_bytes

NAME = "unionpay-zm"
FIELDS = (("交易代码", 3), ("代理机构标识码", 11), ("发送机构标识码", 11), ("系统跟踪号", 6),
          ("交易传输时间", 10), ("帐号", 19), ("交易金额", 12), ("商户类别", 4), ("终端类型", 2),
          ("查询流水号", 21), ("支付方式旧", 2), ("商户订单号", 32), ("支付卡类型", 2),
          ("原始交易的系统跟踪号", 6), ("原始交易日期时间", 10), ("商户手续费", 13),
          ("结算金额", 13), ("支付方式", 4), ("集团商户代码", 15), ("交易类型", 2), ("交易子类", 2),
          ("业务类型", 6), ("帐号类型", 2), ("账单类型", 4), ("账单号码", 32), ("交互方式", 1),
          ("原交易查询流水号", 21), ("商户代码", 15), ("分账入账方式", 1), ("二级商户代码", 15),
          ("二级商户简称", 32), ("二级商户分账入账金额", 13), ("清算净额", 13), ("终端号", 8),
          ("商户自定义域", 32), ("优惠金额", 13), ("发票金额", 13), ("分期付款附加手续费", 12),
          ("分期付款期数", 2), ("交易介质", 1), ("原始交易订单号", 32), ("保留使用", 98))
RECORD_BYTES = record_bytes(FIELDS)      # 607
NAME_PATTERN = re.compile(r"INN(?P<yy>[0-9]{2})(?P<mm>[0-9]{2})(?P<dd>[0-9]{2})[0-9]{2}ZM_")

LAYOUT = dict(fixed_tables(FIELDS, NAME_PATTERN), **{
    "kinds": {"S22": "sale", "S30": "refund"},
    "columns": {
        "acquirer_ref": "查询流水号", "merchant_id": "商户代码", "terminal_id": "终端号",
        "trace_no": "系统跟踪号", "txn_time": "交易传输时间", "kind": "交易代码",
        "card": "帐号", "mcc": "商户类别", "order_id": "商户订单号",
        "amount": {"from": "交易金额", "scale": 0, "sign": "kind"},
        "fee": {"from": "商户手续费", "scale": 0, "sign": "dc_charge"},
        "settled_amount": {"from": "清算净额", "scale": 0, "sign": "dc"},
    },
})


def sniff(name, head):
    """A reason to think this file is ZM, or None."""
    if NAME_PATTERN.search(name):
        return "the name matches INN<yymmdd>nnZM_<merId>"
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if len(line) == RECORD_BYTES and line[:1] == b"S" and line[1:3].isdigit():
        return "%d-byte records starting with a transaction code" % RECORD_BYTES
    return None
