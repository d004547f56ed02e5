"""Alipay 业务明细 (trade bill of alipay.data.dataservice.bill.downloadurl.query).

Sources: the bill-download API (a zip `<PID>0156_<yyyymmdd>.csv.zip` holding
`…_业务明细.csv` and `…_业务明细(汇总).csv`) and public parsers quoting real
files (collected in /work/shared/research/settlement-formats.md §2.5): GBK,
`#` banner and footer lines, identifier cells ending in a TAB, yuan, refund
rows negative with the trade's numbers and their own 退款批次号/请求号, 服务费
negative when charged, no net column (net = 商家实收 + 服务费).  SPEC §7.9.4.
"""

NAME = "alipay"
LAYOUT = {
    "file": {"type": "csv", "encoding": "gb18030", "skip_rows": ["#"], "strip": "\t",
             "settled_at": "file_date"},
    "times": {"format": "%Y-%m-%d %H:%M:%S", "timezone": "Asia/Shanghai"},
    "kinds": {"交易": "sale", "退款": "refund"},
    "amounts": {"scale": 2},
    "columns": {
        "acquirer_ref": {"join": ["支付宝交易号", "退款批次号/请求号"]},
        "order_id": "商户订单号", "terminal_id": "终端号",
        "txn_time": ["完成时间", "创建时间"], "kind": "业务类型",
        "amount": "订单金额（元）",
        "fee": {"from": "服务费（元）", "sign": "negate"},
        "settled_amount": {"sum": ["商家实收（元）", "服务费（元）"]},
        "channel": {"fixed": "alipay"},
    },
}


def sniff(name, head):
    try:
        text = head.decode("gb18030", "ignore")
    except LookupError:
        return None
    if text.startswith("#支付宝") or "支付宝交易号" in text.split("\n", 6)[-1][:200] \
            or "支付宝交易号,商户订单号" in text:
        return "an Alipay banner or header (支付宝交易号)"
    return None
