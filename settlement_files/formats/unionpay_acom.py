"""UnionPay CUPS acquirer 一般交易流水文件, ACOM (`IND<yymmdd><nn>ACOM`).

Sources: the field widths every public reader agrees on (a Python reader's
`g_aiAcom`, a Java `ACOMADatas.acoma_field_length`, a bank's reader with
explicit offsets, an Oracle DDL naming every column; collected in
/work/shared/research/settlement-formats.md §2.2).  34 fields counted in GBK
bytes, one separator byte after each, no header; FULL card numbers (masked
on reading); no merchant fee or net: the fee is taken as 0 and net = amount,
so the file checks arrival, amount and the MCC cleared (跳码).  SPEC §7.9.4.
"""

import re

from daozhang.settlement_files.formats._unionpay import fixed_tables, record_bytes

NAME = "unionpay-acom"
FIELDS = (("代理机构标识码", 11), ("发送机构标识码", 11), ("系统跟踪号", 6), ("交易传输时间", 10),
          ("主账号", 19), ("交易金额", 12), ("部分代收时的承兑金额", 12), ("持卡人交易手续费", 12),
          ("报文类型", 4), ("交易类型码", 6), ("商户类型", 4), ("受卡机终端标识码", 8),
          ("受卡方标识码", 15), ("检索参考号", 12), ("服务点条件码", 2), ("授权应答码", 6),
          ("接收机构标识码", 11), ("原始交易的系统跟踪号", 6), ("交易返回码", 2), ("服务点输入方式", 3),
          ("受理方应收手续费", 12), ("受理方应付手续费", 12), ("转接服务费", 12), ("单双转换标志", 1),
          ("卡片序列号", 3), ("终端读取能力", 1), ("IC卡条件代码", 1), ("原始交易日期时间", 10),
          ("发卡机构标识码", 11), ("交易地域标志", 1), ("终端类型", 2), ("ECI标志", 2),
          ("分期付款附加手续费", 12), ("其他信息", 14))
RECORD_BYTES = record_bytes(FIELDS)      # 299
NAME_PATTERN = re.compile(r"IND(?P<yy>[0-9]{2})(?P<mm>[0-9]{2})(?P<dd>[0-9]{2})[0-9]{2}ACOM")

LAYOUT = dict(fixed_tables(FIELDS, NAME_PATTERN), **{
    # 报文类型/交易类型码 (message type / processing code)
    "kinds": {"0200|000000": "sale", "0200|200000": "void", "0220|200000": "refund",
              "0420|000000": "reversal", "0220|000000": "preauth_completion"},
    "columns": {
        "acquirer_ref": {"join": ["代理机构标识码", "发送机构标识码", "系统跟踪号", "交易传输时间"]},
        "merchant_id": "受卡方标识码", "terminal_id": "受卡机终端标识码", "rrn": "检索参考号",
        "auth_code": "授权应答码", "trace_no": "系统跟踪号", "txn_time": "交易传输时间",
        "kind": {"join": ["报文类型", "交易类型码"]}, "card": "主账号", "mcc": "商户类型",
        "amount": {"from": "交易金额", "scale": 0, "sign": "kind"},
        "fee": {"fixed": "0"},
        "settled_amount": {"value": "amount - fee"},
    },
})


def sniff(name, head):
    if NAME_PATTERN.search(name):
        return "the name matches IND<yymmdd>nnACOM"
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if len(line) == RECORD_BYTES and line[:11].strip().isdigit():
        return "%d-byte records starting with an institution code" % RECORD_BYTES
    return None
