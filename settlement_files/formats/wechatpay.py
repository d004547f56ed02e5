"""WeChat Pay 交易账单 (trade bill, ALL / SUCCESS / REFUND).

Sources: https://pay.weixin.qq.com/docs/merchant/products/bill-download/
format-trade.html (field lists; "明细数据和汇总数据每个字段前会增加1个(`)字符");
https://developers.weixin.qq.com/minigame/dev/wxcloudrun/src/development/pay/
order/bill.html (amounts in yuan, an example with the summary); fixtures in
github.com/Wechat-Group/weixin-java-tools (REFUND rows, 5-decimal fee, BOM).
UTF-8 (BOM possible), a backtick before every value, a summary header and
row at the end, refund rows reusing the order numbers with the amount in
退款金额 and a negative fee.  No net column: net = amount - fee.  SPEC §7.9.4.
"""

NAME = "wechatpay"
LAYOUT = {
    "file": {"type": "csv", "encoding": "utf-8", "strip": "`", "end_at": ["总交易单数"],
             "settled_at": "file_date"},
    "times": {"format": "%Y-%m-%d %H:%M:%S", "timezone": "Asia/Shanghai"},
    "kinds": {"SUCCESS": "sale", "REFUND": "refund", "REVOKED": "void"},
    "amounts": {"scale": 2, "round": "half_up"},
    "columns": {
        "acquirer_ref": {"from": "微信订单号", "by_kind": {"refund": "微信退款单号"}},
        "order_id": "商户订单号", "terminal_id": "设备号", "txn_time": "交易时间",
        # The shop's own id: the sub-merchant's under a service provider, else 商户号.
        "merchant_id": ["特约商户号", "商户号"],
        "kind": "交易状态",
        "amount": {"from": ["应结订单金额", "总金额"], "by_kind": {"refund": "退款金额"},
                   "sign": "kind"},
        "fee": "手续费",
        "settled_amount": {"value": "amount - fee"},
        "channel": {"fixed": "wechat"},
    },
}


def sniff(name, head):
    text = head.lstrip(b"\xef\xbb\xbf")
    if text.startswith("交易时间,公众账号ID".encode()):
        return "the header starts 交易时间,公众账号ID"
    return None
